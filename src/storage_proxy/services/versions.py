"""Versions of files, for every door: the vfolder's setting, and listing, downloading, restoring
and deleting the versions a volume kept.

A vfolder keeps versions once its ``versions`` setting is above 0 (``PUT /folder/versions``):
then an overwrite, a move over a file or a delete keeps what it replaces, at most N per file,
the oldest dropped first (the volume does that, on the descriptors of the change itself).
Listing and downloading need RO on the vfolder, restoring RW, deleting a version RWD -- each
through the :class:`Gate`, each change an audit line.  Restoring makes the version the current
file and keeps the current one as a version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..core.errors import NotSupported, VersionNotFound
from ..core.files import KeepVersions, ReadOptions
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.snapshots import FileVersion, check_version_id
from ..core.types import Capability, DirEntry, DirEntryType, FileMeta, Stat, VFolderID
from ..volumes.abc import AbstractVolume
from .access import Actor
from .audit import AuditLog
from .files import Download
from .gate import Gate
from .keeping import VersionSettings
from .quotas import QuotaService
from .usage import UsageService

#: The capability this service needs of a volume, and its name in a refusal.
_VERSIONS = (Capability.FILE_VERSIONS, "file versions")


class VersionService:
    def __init__(
        self,
        gate: Gate,
        settings: VersionSettings,
        audit: AuditLog,
        usage: UsageService,
        quotas: QuotaService,
    ) -> None:
        self._gate = gate
        self.settings = settings
        self._audit = audit
        self._usage = usage
        self._quotas = quotas

    async def _enter(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        needed: Permission,
        op: str,
        relpath: RelPath | None = None,
    ) -> AbstractVolume:
        return await self._gate.enter_feature(
            actor, volume_name, vfid, needed, _VERSIONS, op=op, relpath=relpath
        )

    # -- the setting -----------------------------------------------------------------------------
    async def get_limit(self, actor: Actor, volume_name: str, vfid: VFolderID) -> int:
        await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="versions.get")
        return await self.settings.limit(volume_name, vfid)

    async def set_limit(self, actor: Actor, volume_name: str, vfid: VFolderID, keep: int) -> None:
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RWD, op="versions.set")
        if keep and Capability.FILE_VERSIONS not in await volume.get_capabilities():
            raise NotSupported("file versions", volume.backend_name)
        async with self._audit.operation("versions.set", volume_name, vfid) as line:
            line.extra["versions"] = keep
            await self.settings.set(volume_name, vfid, keep)

    # -- the versions of one file ----------------------------------------------------------------
    async def list_versions(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath
    ) -> list[FileVersion]:
        """Newest first; none where the volume keeps none."""
        volume = await self._gate.enter(
            actor, volume_name, vfid, Permission.RO, relpath=relpath, op="version.list"
        )
        return await volume.list_versions(vfid, relpath)

    async def find(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath, version_id: str
    ) -> FileVersion:
        """One kept version of the file (RO), or VersionNotFound."""
        vid = check_version_id(version_id)
        for version in await self.list_versions(actor, volume_name, vfid, relpath):
            if version.id == vid:
                return version
        raise VersionNotFound(f"{relpath} has no version {vid!r}")

    async def open_download(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        version_id: str,
        *,
        read_up_to: int = 0,
    ) -> tuple[FileVersion, Download]:
        vid = check_version_id(version_id)
        volume = await self._enter(actor, volume_name, vfid, Permission.RO, "version.get", relpath)
        async with self._audit.operation(
            "version.download", volume_name, vfid, path=str(relpath)
        ) as line:
            line.extra["version_id"] = vid
            version, local = await volume.open_version(vfid, relpath, vid, read_up_to=read_up_to)
            line.bytes = version.size
            name = relpath.name
            if local is not None:
                return version, Download(name, local=local)

            def read(offset: int, length: int) -> AsyncIterator[bytes]:
                options = ReadOptions(offset=offset, length=length)
                return volume.read_version(vfid, relpath, vid, options)

            return version, Download(name, entry=_entry_of(version, relpath), reader=read)

    async def restore(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath, version_id: str
    ) -> FileMeta:
        """The version becomes the current file; the current one is kept as a version (even
        where the setting is 0 now: nothing already kept is dropped by a restore)."""
        vid = check_version_id(version_id)
        volume = await self._enter(
            actor, volume_name, vfid, Permission.RW, "version.restore", relpath
        )
        limit = await self.settings.limit(volume_name, vfid)
        if limit <= 0:
            limit = len(await volume.list_versions(vfid, relpath)) + 1
        keep = KeepVersions(limit, who=actor.principal)
        size = next((v.size for v in await volume.list_versions(vfid, relpath) if v.id == vid), 0)
        try:
            async with (
                self._audit.operation(
                    "version.restore", volume_name, vfid, path=str(relpath)
                ) as line,
                self._quotas.copying(volume_name, vfid, size),
            ):
                line.extra["version_id"] = vid
                meta = await volume.restore_version(vfid, relpath, vid, keep)
                line.bytes = meta.size
        finally:
            await self._usage.changed(volume_name, vfid)
        await self._quotas.observe_written(volume_name, vfid)
        return meta

    async def delete(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath, version_id: str
    ) -> None:
        vid = check_version_id(version_id)
        volume = await self._enter(
            actor, volume_name, vfid, Permission.RWD, "version.delete", relpath
        )
        async with self._audit.operation(
            "version.delete", volume_name, vfid, path=str(relpath)
        ) as line:
            line.extra["version_id"] = vid
            await volume.delete_version(vfid, relpath, vid)


def _entry_of(version: FileVersion, relpath: RelPath) -> DirEntry:
    """What the download door needs to know of a streamed version (size, time, name)."""
    stat = Stat(size=version.size, mode=0o644, created=version.modified, modified=version.modified)
    return DirEntry(relpath.name, str(relpath), DirEntryType.FILE, stat, "")
