"""The maintenance hooks of s3 volumes: a trash under ``<prefix>/.trash/``, staged uploads in
the local staging directory, and the vfolders the bucket holds (their markers).

A deleted vfolder is moved (server-side copies, then deletes) to ``.trash/<scope>-<folder>-<id>/``
behind a marker whose time is the deletion time; the trash job removes the entry once the grace
time is over.  The vfolder's own marker goes first, so it is out of sight at once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from storage_proxy.core.types import VFolderID
from storage_proxy.volumes.abc import AbstractVolume
from storage_proxy.volumes.upkeep import StoredLayout, TrashReport

from .client import S3Connection, modified
from .window import for_each

TRASH = ".trash"
COPY_CONCURRENCY = 16
# Backend.AI layout, as on filesystems: <scope-hex>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>/
_LEVELS = (
    re.compile(r"^[0-9a-f]{32}$"),
    re.compile(r"^[0-9a-f]{2}$"),
    re.compile(r"^[0-9a-f]{2}$"),
    re.compile(r"^[0-9a-f]{28}$"),
)


class S3Upkeep(AbstractVolume):
    """The part of :class:`~.volume.S3Volume` the jobs call."""

    conn: S3Connection
    root: str

    # provided by S3Volume
    def key(self, *parts: str) -> str:
        raise NotImplementedError

    def trash_prefix(self) -> str:
        return self.key(TRASH) + "/"

    async def move_to_trash(self, vfid: VFolderID, prefix: str) -> str:
        """Copy the vfolder's keys below a new trash entry, then delete them; the entry."""
        stamp = f"{vfid.quota_scope_id.pathname}-{vfid.folder_id.hex}-{uuid.uuid4().hex}"
        entry = self.trash_prefix() + stamp + "/"
        await self.conn.c.put_object(Bucket=self.conn.bucket, Key=entry)  # when it was deleted
        items = [i async for i in self.conn.iter_keys(prefix) if i["Key"] != prefix]

        async def move(item: Mapping[str, Any]) -> None:
            await self.conn.copy(item["Key"], entry + item["Key"][len(prefix) :], item["Size"])

        await for_each(items, move, COPY_CONCURRENCY)
        await self.conn.delete_prefix(prefix)
        return entry

    async def purge_trash(self, older_than: float) -> TrashReport:
        report = TrashReport()
        root = self.trash_prefix()
        async for item in self.conn.iter_keys(root, delimiter="/"):
            entry = item.get("Prefix")
            if entry is None:
                continue  # a stray object right in the trash: not an entry
            marker = await self.conn.head(entry)
            deleted = modified(marker).timestamp() if marker is not None else 0.0
            if deleted >= older_than:
                report.kept += 1
                continue
            await self.conn.delete_prefix(entry)
            report.purged.append(entry[len(self.key()) :].lstrip("/"))
        return report

    async def stored_vfolders(self) -> StoredLayout:
        found: set[tuple[str, ...]] = set()
        strays: list[str] = []
        base = self.key() + "/" if self.root else ""

        async def visit(prefix: str, parts: tuple[str, ...]) -> None:
            depth = len(parts)
            async for item in self.conn.iter_keys(prefix, delimiter="/"):
                key = item.get("Key")
                if key is not None:
                    if key != prefix:  # an object among the levels (the level's marker aside)
                        strays.append(key[len(base) :])
                    continue
                name = item["Prefix"][len(prefix) :].rstrip("/")
                here = (*parts, name)
                if depth <= 1 and name.startswith("."):
                    continue  # the proxy's own (trash; a scope's snapshots)
                if not _LEVELS[depth].match(name):
                    strays.append("/".join(here))
                elif depth + 1 < len(_LEVELS):
                    await visit(item["Prefix"], here)
                elif await self.conn.head(item["Prefix"]) is not None:
                    found.add(here)  # a vfolder: its marker is there
                else:
                    strays.append("/".join(here) + " (keys without a vfolder marker)")

        await visit(base, ())
        return StoredLayout(frozenset(found), tuple(strays))
