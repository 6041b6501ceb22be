"""Session tokens: the manager asks for a download or an upload on a client's behalf, the client
comes back with the token alone (Backend.AI's shape).  A token is a grant — one vfolder, one
right — and redeeming it gives the :class:`Actor` the file and upload services check.  A
download token may name a kept version of the file (``version``): the client then gets that
version, checked as any download is (RO, inside the vfolder)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.errors import InvalidParameter, InvalidTokenClaims, NotSupported, UploadNotFound
from ..core.paths import RelPath
from ..core.records import BgTaskRecord, Permission, UploadSession
from ..core.types import VFolderID
from .access import Actor
from .archive import ZipSource
from .bgtasks import BackgroundTaskService, ProgressReporter
from .files import Download, FileService
from .tokens import ArchiveClaims, SessionClaims, TokenService
from .uploads import UploadService
from .versions import VersionService


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    actor: Actor
    volume: str
    vfid: VFolderID
    relpath: RelPath
    archive: bool
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ArchiveGrant:
    actor: Actor
    volume: str
    vfid: VFolderID
    files: tuple[str, ...]
    filename: str


#: The name of an archive download whose token names none (as Backend.AI names it).
DEFAULT_ARCHIVE_NAME = "archive.zip"


#: Redeemed download tokens kept (a dataset reader fetches many files, some more than once).
GRANT_CACHE_ENTRIES = 50_000


class ArchiveProgress:
    """An archive's progress as a background task's: files complete in it (how many there
    will be is not known until the walk ends), and in the message the bytes sent."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self._reporter = reporter
        self.files = self.bytes = 0

    async def file_done(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        await self._reporter.update(self.files, None, self.message())

    def message(self) -> str:
        return f"{self.files} files, {self.bytes} bytes sent"


class TransferService:
    def __init__(
        self,
        tokens: TokenService,
        files: FileService,
        uploads: UploadService,
        versions: VersionService | None = None,
        bgtasks: BackgroundTaskService | None = None,
    ) -> None:
        self.tokens = tokens
        self._bgtasks = bgtasks
        self._files = files
        self._versions = versions
        self._uploads = uploads
        self._grants: dict[str, tuple[float, DownloadGrant]] = {}  # token -> (exp, grant)

    async def download_token(
        self,
        actor: Actor,
        volume: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        archive: bool,
        version: str | None = None,
    ) -> str:
        """404 now, not when the client comes: for the file, or for its ``version``."""
        if version is None:
            await self._files.stat(actor, volume, vfid, relpath)
        else:
            _one_file(archive)
            await self._version_service().find(actor, volume, vfid, relpath, version)
        claims = SessionClaims(
            "download",
            volume,
            str(vfid),
            str(relpath),
            archive=archive,
            version=version,
            by=actor.user,
        )
        return self.tokens.issue_session(claims)

    async def open_download(
        self, actor: Actor, grant: DownloadGrant, *, archive: bool, read_up_to: int = 0
    ) -> Download:
        """What a redeemed download token gives: the file (a directory as a zip, ``archive``),
        or the version of the file it names."""
        if grant.version is None:
            return await self._files.open_download(
                actor, grant.volume, grant.vfid, grant.relpath, archive=archive,
                read_up_to=read_up_to,
            )  # fmt: skip
        _one_file(archive)
        _, opened = await self._version_service().open_download(
            actor, grant.volume, grant.vfid, grant.relpath, grant.version, read_up_to=read_up_to
        )
        return opened

    def _version_service(self) -> VersionService:
        if self._versions is None:
            raise NotSupported("file versions", "this daemon")
        return self._versions

    async def upload_token(
        self, actor: Actor, volume: str, vfid: VFolderID, relpath: RelPath, size: int
    ) -> str:
        """Creates the session (its declared size reserved against the quota) and its token."""
        session = await self._uploads.create(actor, volume, vfid, relpath, size)
        claims = SessionClaims(
            "upload", volume, str(vfid), str(relpath), size=size, session=session.id
        )
        return self.tokens.issue_session(claims)

    def archive_token(
        self, volume: str, vfid: VFolderID, files: list[str], filename: str | None
    ) -> str:
        """A token for several files and directories of one vfolder as one zip.  Nothing is
        looked up yet (as in Backend.AI): the paths are checked when the client comes."""
        return self.tokens.issue_archive(ArchiveClaims(volume, str(vfid), tuple(files), filename))

    def redeem_archive(self, token: str | None) -> ArchiveGrant:
        claims = self.tokens.verify_archive(token)
        try:
            vfid = VFolderID.parse(claims.vfid)
        except InvalidParameter:
            raise InvalidTokenClaims("the token names no valid vfolder") from None
        actor = Actor.for_grant("archive", claims.volume, claims.vfid, Permission.RO)
        name = claims.filename or DEFAULT_ARCHIVE_NAME
        return ArchiveGrant(actor, claims.volume, vfid, claims.files, name)

    async def open_archive(self, grant: ArchiveGrant) -> ZipSource:
        return await self._files.open_archive(grant.actor, grant.volume, grant.vfid, grant.files)

    async def follow_archive(
        self,
        grant: ArchiveGrant,
        send: Callable[[ArchiveProgress], Awaitable[None]],
        started: Callable[[str], Awaitable[None]],
    ) -> BgTaskRecord:
        """Send an archive as a background task (kind ``archive-download``) whose events tell
        the files and bytes sent so far: ``started`` hears its id before ``send`` runs, and
        ``send`` reports each file to the progress it is given.  BgTaskEnded when it was
        cancelled or failed (the client gone)."""
        if self._bgtasks is None:
            raise NotSupported("archive progress", "this daemon")

        async def work(reporter: ProgressReporter) -> dict[str, int]:
            progress = ArchiveProgress(reporter)
            await reporter.update(0, None, progress.message(), force=True)
            await send(progress)
            await reporter.update(message=progress.message(), force=True)
            return {"files": progress.files, "bytes": progress.bytes}

        params = {"volume": grant.volume, "vfid": str(grant.vfid), "paths": len(grant.files)}
        return await self._bgtasks.run_watched("archive-download", work, started, params=params)

    def redeem_download(self, token: str | None) -> DownloadGrant:
        """The grant a download token carries; a token seen before is answered from memory
        until it expires (it is immutable: the same text always grants the same)."""
        if token is not None:
            found = self._grants.get(token)
            if found is not None and found[0] > time.time():
                return found[1]
        claims = self.tokens.verify_session(token, "download", remember=False)  # (the grant is)
        actor = Actor.for_grant(
            "download", claims.volume, claims.vfid, Permission.RO, on_behalf=claims.by
        )
        grant = DownloadGrant(
            actor,
            claims.volume,
            VFolderID.parse(claims.vfid),
            RelPath.parse(claims.relpath),
            claims.archive,
            claims.version,
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


def _one_file(archive: bool) -> None:
    if archive:
        raise InvalidParameter("a version of a file is one file: it cannot be an archive")
