"""Browsing a vfolder the way people do: one directory at a time, in pages, and download links.

Both are read operations (RO), checked at the gate like every other.

- A directory page lists the direct children of one directory in name order (code points), at
  most ``limit`` of them after ``marker`` (the last name of the previous page), so a client can
  walk a directory of any size without the daemon holding a cursor.
- A download link is a session token for ``GET /download`` with a lifetime the caller picks,
  capped by ``[storage-proxy] download-link-max-expire``: whoever holds the link can fetch that
  one file (or that directory as a zip) until it expires, without a user token.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..core.errors import InvalidParameter, NotADirectory
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.types import DirEntry, DirEntryType, VFolderID
from ..volumes.abc import AbstractVolume
from .access import Actor
from .gate import Gate
from .tokens import SessionClaims, TokenService, UserClaims

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    path: RelPath
    entries: list[DirEntry]
    next_marker: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "entries": [
                {
                    "name": e.name,
                    "path": f"{self.path}/{e.name}" if self.path.parts else e.name,
                    "type": e.type.value,
                    "size": e.stat.size,
                    "modified": e.stat.modified.isoformat(),
                }
                for e in self.entries
            ],
            "truncated": self.next_marker is not None,
            "next_marker": self.next_marker,
        }


async def list_directory(
    volume: AbstractVolume,
    vfid: VFolderID,
    relpath: RelPath,
    *,
    marker: str = "",
    limit: int = DEFAULT_PAGE,
) -> DirectoryPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidParameter(f"limit must be between 1 and {MAX_PAGE}")
    if relpath.parts:
        entry = await volume.stat(vfid, relpath)
        if entry.type is not DirEntryType.DIRECTORY:
            raise NotADirectory(f"{relpath} is not a directory")
    # the page's entries and one more, kept while the directory streams past: memory for a
    # page, not for the directory (one of 300,000 entries held them all before)
    keep, held = limit + 1, []
    async for e in volume.scandir(vfid, relpath, limit=None):
        if e.name > marker:
            held.append(e)
            if len(held) >= 4 * keep:
                held = heapq.nsmallest(keep, held, key=_name)
    after = sorted(held, key=_name)[:keep]
    page = after[:limit]
    more = len(after) > limit
    return DirectoryPage(relpath, page, page[-1].name if more else None)


def _name(entry: DirEntry) -> str:
    return entry.name


@dataclass(frozen=True, slots=True)
class DownloadLink:
    path: str  # relative to the client API's base URL
    base_url: str
    expires_at: datetime
    archive: bool

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "url": self.base_url.rstrip("/") + self.path,
            "expires_at": self.expires_at.isoformat(),
            "archive": self.archive,
        }


def link_lifetime(requested: timedelta | None, cap: timedelta) -> timedelta:
    if requested is None:
        return cap
    if requested.total_seconds() < 1:
        raise InvalidParameter("expires_in must be at least one second")
    if requested > cap:
        raise InvalidParameter(
            f"expires_in {int(requested.total_seconds())}s exceeds "
            f"[storage-proxy] download-link-max-expire ({int(cap.total_seconds())}s)"
        )
    return requested


async def download_link(
    tokens: TokenService,
    volume: AbstractVolume,
    vfid: VFolderID,
    relpath: RelPath,
    *,
    expires_in: timedelta | None,
    cap: timedelta,
    base_url: str,
    minted_by: UserClaims | None,
) -> DownloadLink:
    """A link to one file, or to a directory as a zip; 404 now if it does not exist.  A link a
    user minted is good only while that user still may read the vfolder."""
    lifetime = link_lifetime(expires_in, cap)
    entry = await volume.stat(vfid, relpath)
    archive = entry.type is DirEntryType.DIRECTORY
    claims = SessionClaims(
        op="download",
        volume=volume.name,
        vfid=str(vfid),
        relpath=str(relpath),
        archive=archive,
        by=minted_by,
    )
    expires_at = datetime.fromtimestamp(int(time.time() + lifetime.total_seconds()), UTC)
    token = tokens.issue_session(claims, lifetime)
    return DownloadLink(f"/download?token={token}", base_url, expires_at, archive)


class BrowseService:
    """Directory pages and download links for the web browser, behind the gate."""

    def __init__(
        self,
        gate: Gate,
        tokens: TokenService,
        link_cap: timedelta,
        base_url: Callable[[], str],
    ) -> None:
        self._gate = gate
        self._tokens = tokens
        self._link_cap = link_cap
        self._base_url = base_url  # the client API's URL (known once the listener runs)

    async def directory(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        marker: str = "",
        limit: int = DEFAULT_PAGE,
    ) -> DirectoryPage:
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.list")
        async with self._gate.costly(actor, vfid):
            return await list_directory(volume, vfid, relpath, marker=marker, limit=limit)

    async def link(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        expires_in: timedelta | None,
    ) -> DownloadLink:
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.link")
        return await download_link(
            self._tokens, volume, vfid, relpath, expires_in=expires_in, cap=self._link_cap,
            base_url=self._base_url(), minted_by=actor.user,
        )  # fmt: skip
