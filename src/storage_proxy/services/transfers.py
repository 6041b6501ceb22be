"""Session tokens: the manager asks for a download or an upload on a client's behalf, the client
comes back with the token alone (Backend.AI's shape).  A token is a grant — one vfolder, one
right — and redeeming it gives the :class:`Actor` the file and upload services check."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.errors import UploadNotFound
from ..core.paths import RelPath
from ..core.records import Permission, UploadSession
from ..core.types import VFolderID
from .access import Actor
from .files import FileService
from .tokens import SessionClaims, TokenService
from .uploads import UploadService


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    actor: Actor
    volume: str
    vfid: VFolderID
    relpath: RelPath
    archive: bool


#: Redeemed download tokens kept (a dataset reader fetches many files, some more than once).
GRANT_CACHE_ENTRIES = 50_000


class TransferService:
    def __init__(self, tokens: TokenService, files: FileService, uploads: UploadService) -> None:
        self.tokens = tokens
        self._files = files
        self._uploads = uploads
        self._grants: dict[str, tuple[float, DownloadGrant]] = {}  # token -> (exp, grant)

    async def download_token(
        self, actor: Actor, volume: str, vfid: VFolderID, relpath: RelPath, *, archive: bool
    ) -> str:
        await self._files.stat(actor, volume, vfid, relpath)  # 404 now, not when the client comes
        claims = SessionClaims("download", volume, str(vfid), str(relpath), archive=archive)
        return self.tokens.issue_session(claims)

    async def upload_token(
        self, actor: Actor, volume: str, vfid: VFolderID, relpath: RelPath, size: int
    ) -> str:
        """Creates the session (its declared size reserved against the quota) and its token."""
        session = await self._uploads.create(actor, volume, vfid, relpath, size)
        claims = SessionClaims(
            "upload", volume, str(vfid), str(relpath), size=size, session=session.id
        )
        return self.tokens.issue_session(claims)

    def redeem_download(self, token: str | None) -> DownloadGrant:
        """The grant a download token carries; a token seen before is answered from memory
        until it expires (it is immutable: the same text always grants the same)."""
        if token is not None:
            found = self._grants.get(token)
            if found is not None and found[0] > time.time():
                return found[1]
        claims = self.tokens.verify_session(token, "download")
        actor = Actor.for_grant("download", claims.volume, claims.vfid, Permission.RO)
        grant = DownloadGrant(
            actor,
            claims.volume,
            VFolderID.parse(claims.vfid),
            RelPath.parse(claims.relpath),
            claims.archive,
        )
        if token is not None and claims.exp is not None:
            if len(self._grants) >= GRANT_CACHE_ENTRIES:
                self._grants.clear()  # a burst of new tokens: start over (cheap to refill)
            self._grants[token] = (claims.exp, grant)
        return grant

    async def redeem_upload(self, token: str | None, upload_id: str | None) -> UploadSession:
        """The upload a token names (``upload_id``, if the URL names one too, must match)."""
        claims = self.tokens.verify_session(token, "upload")
        if claims.session is None or (upload_id and upload_id != claims.session):
            raise UploadNotFound("this token is not for that upload")
        actor = Actor.for_grant("upload", claims.volume, claims.vfid, Permission.RW)
        return await self._uploads.open(actor, claims.session)
