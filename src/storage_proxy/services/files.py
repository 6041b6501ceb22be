"""Files inside vfolders, for every door: list (with real cursor paging), read, write, move,
delete, and their metadata.

Each operation names the :class:`Actor` it runs for and passes the :class:`Gate` first (RO
reads, RW writes, RWD deletes), so no door can forget a check; each is one audit line; each
write drops the vfolder's cached usage afterwards (on every node) and feeds the quota alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core.errors import (
    FileNotFound,
    InvalidParameter,
    InvalidPath,
    IsADirectory,
    NotARegularFile,
    StorageProxyError,
)
from ..core.files import (
    KeepVersions,
    LocalFile,
    RawBody,
    ReadOptions,
    WholeFile,
    WriteOptions,
)
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.types import DirEntry, DirEntryType, FileMeta, VFolderID
from ..volumes.abc import AbstractVolume
from .access import Actor
from .archive import Held, LocalTree, Selection, VolumeTree, ZipSource
from .audit import AuditEntry, AuditLog
from .bgtasks import BackgroundTaskService, ProgressReporter
from .gate import Gate
from .keeping import VersionSettings
from .quotas import QuotaService
from .usage import UsageService

MAX_PAGE = 10_000
#: Entries one archive download may name (each directory counts once, whatever it holds).
MAX_ARCHIVE_ENTRIES = 10_000
#: Looks before a ``missing_ok`` delete: a path may vanish between the look and the delete.
_MISSING_RETRIES = 3


@dataclass(frozen=True, slots=True)
class FilePage:
    files: list[DirEntry]
    truncated: bool

    @property
    def next_marker(self) -> str | None:
        return self.files[-1].path if self.truncated else None


@dataclass(slots=True)
class Download:
    """What a download sends: exactly one of an opened local file, a directory as a zip, or a
    stream of an object store's file (``entry`` describes it, ``read`` yields a byte range)."""

    name: str
    local: LocalFile | None = None
    tree: ZipSource | None = None
    entry: DirEntry | None = None
    volume: AbstractVolume | None = None
    vfid: VFolderID | None = None
    relpath: RelPath | None = None
    #: Reads a byte range where the bytes come from elsewhere than a vfolder (a snapshot).
    reader: Callable[[int, int], AsyncIterator[bytes]] | None = None

    def read(self, offset: int, length: int) -> AsyncIterator[bytes]:
        if self.reader is not None:
            return self.reader(offset, length)
        assert self.volume is not None and self.vfid is not None and self.relpath is not None
        return self.volume.read(self.vfid, self.relpath, ReadOptions(offset=offset, length=length))

    async def open_raw(self, offset: int, length: int) -> RawBody | None:
        """The byte range on a socket, where the volume can hand one over (see
        :meth:`AbstractVolume.open_raw_read`); None otherwise."""
        if self.reader is not None or self.volume is None:
            return None
        assert self.vfid is not None and self.relpath is not None
        return await self.volume.open_raw_read(self.vfid, self.relpath, offset, length)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()


class FileService:
    def __init__(
        self,
        gate: Gate,
        audit: AuditLog,
        usage: UsageService,
        quotas: QuotaService,
        bgtasks: BackgroundTaskService | None = None,
        versions: VersionSettings | None = None,
    ) -> None:
        self._versions = versions  # a vfolder's versions = N: what a change replaces is kept
        self._gate = gate
        self._audit = audit
        self._usage = usage
        self._quotas = quotas
        self._bgtasks = bgtasks

    @contextlib.asynccontextmanager
    async def _changing(
        self,
        actor: Actor,
        op: str,
        volume_name: str,
        vfid: VFolderID,
        needed: Permission,
        *,
        path: RelPath | None = None,
        nbytes: int | None = None,
    ) -> AsyncIterator[tuple[AbstractVolume, AuditEntry]]:
        volume = await self._gate.enter(
            actor, volume_name, vfid, needed, relpath=path, nbytes=nbytes, op=op
        )
        try:
            async with self._audit.operation(op, volume_name, vfid, path=_str(path)) as entry:
                yield volume, entry
        finally:  # a failed or partial change has still changed the tree
            await self._usage.changed(volume_name, vfid)

    async def _keep(self, volume_name: str, vfid: VFolderID) -> KeepVersions | None:
        return None if self._versions is None else await self._versions.keep(volume_name, vfid)

    # -- reading -------------------------------------------------------------------------------
    async def list_dir(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath
    ) -> list[DirEntry]:
        """One directory (at most ``scandir-limit`` entries), as the manager API lists it."""
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.list")
        async with self._gate.costly(actor, vfid):
            return [e async for e in volume.scandir(vfid, relpath)]

    async def list_files(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        *,
        prefix: str = "",
        marker: str = "",
        limit: int = 1000,
    ) -> FilePage:
        """Files below the vfolder in key order, S3-style: ``prefix``, ``marker``, ``limit``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidParameter(f"limit must be between 1 and {MAX_PAGE}")
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.list")
        async with self._gate.costly(actor, vfid):
            found = await volume.list_files(
                vfid, prefix=prefix, start_after=marker, limit=limit + 1
            )
        return FilePage(found[:limit], len(found) > limit)

    async def stat(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath
    ) -> DirEntry:
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.stat")
        return await volume.stat(vfid, relpath)

    async def file_meta(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath
    ) -> FileMeta:
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.stat")
        return await volume.get_file_meta(vfid, relpath)

    async def open_download(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        archive: bool = False,
        read_up_to: int = 0,
    ) -> Download:
        """The file opened (a local one on a held descriptor), or the directory as a zip source
        with ``archive``; the caller sends it and closes it."""
        volume = await self._gate.enter(
            actor, volume_name, vfid, Permission.RO, relpath=relpath, op="file.download"
        )
        name = relpath.name or vfid.folder_id.hex
        async with self._audit.operation(
            "file.download", volume_name, vfid, path=str(relpath)
        ) as e:
            local = await volume.local_file(vfid, relpath, read_up_to=read_up_to)
            if local is None:
                entry = await volume.stat(vfid, relpath)
                if entry.type is DirEntryType.DIRECTORY:
                    _need_archive(archive, relpath)
                    release = await self._gate.hold_costly(actor, vfid)
                    tree = Held(VolumeTree(volume, vfid, relpath), release)
                    return Download(f"{name}.zip", tree=tree)
                e.bytes = entry.stat.size
                return Download(name, entry=entry, volume=volume, vfid=vfid, relpath=relpath)
            if local.is_dir:
                try:
                    _need_archive(archive, relpath)
                    release = await self._gate.hold_costly(actor, vfid)  # a zip holds descriptors
                except BaseException:
                    local.close()
                    raise
                tree = Held(LocalTree(local.fd, volume.run_blocking), release)
                return Download(f"{name}.zip", tree=tree)
            e.bytes = local.stat.st_size
            return Download(name, local=local)

    def read(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath
    ) -> AsyncGenerator[bytes, None]:
        """A file's bytes as a stream (the gate passed and the file opened before the first
        chunk is yielded, so a refusal comes before anything is sent)."""

        async def chunks() -> AsyncGenerator[bytes, None]:
            volume = await self._gate.enter(
                actor, volume_name, vfid, Permission.RO, relpath=relpath, op="file.fetch"
            )
            async with self._audit.operation("file.fetch", volume_name, vfid, path=str(relpath)):
                async for chunk in volume.read(vfid, relpath):
                    yield chunk

        return chunks()

    async def open_archive(
        self, actor: Actor, volume_name: str, vfid: VFolderID, names: Sequence[str]
    ) -> ZipSource:
        """Several files and directories as one zip source: each name parsed and looked up now
        (InvalidPath, FileNotFound), each opened beneath the vfolder root when it is reached."""
        if not 1 <= len(names) <= MAX_ARCHIVE_ENTRIES:
            raise InvalidParameter(f"an archive names 1 to {MAX_ARCHIVE_ENTRIES} paths")
        relpaths = [RelPath.parse(name, allow_root=False) for name in names]
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="file.archive")
        async with self._audit.operation("file.archive", volume_name, vfid) as e:
            e.extra["paths"] = [str(p) for p in relpaths[:100]]
            entries = [await _look_up(volume, vfid, rel) for rel in relpaths]
            for entry in entries:
                if entry.type not in (DirEntryType.FILE, DirEntryType.DIRECTORY):
                    raise NotARegularFile(f"not a regular file or directory: {entry.path}")
        return Held(Selection(volume, vfid, entries), await self._gate.hold_costly(actor, vfid))

    # -- writing -------------------------------------------------------------------------------
    async def write(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        body: AsyncIterator[bytes],
        options: WriteOptions = WriteOptions(),
    ) -> FileMeta:
        """Store a whole file atomically (all or nothing) through the volume's write path."""
        if not relpath.parts:
            raise InvalidParameter("a file needs a path below the vfolder root")
        async with self._changing(
            actor, "file.write", volume_name, vfid, Permission.RW, path=relpath,
            nbytes=options.size_hint,
        ) as (volume, entry):  # fmt: skip
            if options.overwrite and options.keep is None:
                keep = await self._keep(volume_name, vfid)
                options = dataclasses.replace(options, keep=keep)
            meta = await volume.write(vfid, relpath, body, options)
            entry.bytes = meta.size
        await self._quotas.observe_written(volume_name, vfid)
        return meta

    async def write_whole(
        self, actor: Actor, volume_name: str, vfid: VFolderID, files: Sequence[WholeFile]
    ) -> list[FileMeta | StorageProxyError]:
        """Small files that arrived whole (a batch's), each stored as :meth:`write` stores it
        -- its path checked beneath the vfolder by the volume's write, its quota held, its
        audit line -- in as few round trips as the volume can; each one's outcome, in order.
        The caller's right and the vfolder's state are checked once for the group."""
        started = time.monotonic()
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RW, op="file.write")
        keep = await self._keep(volume_name, vfid)
        if keep is not None:
            files = [
                dataclasses.replace(f, options=dataclasses.replace(f.options, keep=keep))
                if f.options.overwrite and f.options.keep is None
                else f
                for f in files
            ]
        try:
            outcomes = await volume.write_whole(vfid, files)
        finally:
            await self._usage.changed(volume_name, vfid)
        took = (time.monotonic() - started) / max(len(files), 1)
        for f, outcome in zip(files, outcomes, strict=True):
            entry = AuditEntry("file.write", volume_name, str(vfid), str(f.relpath))
            if isinstance(outcome, StorageProxyError):
                entry.bytes, result = len(f.body), outcome.code
            else:
                entry.bytes, result = outcome.size, "ok"
            self._audit.record(entry, result, took)
        await self._quotas.observe_written(volume_name, vfid)
        return outcomes

    async def mkdir(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        parents: bool = True,
        exist_ok: bool = False,
    ) -> list[StorageProxyError | None]:
        """Each directory's outcome (None: made), in the order asked."""
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RW, op="file.mkdir")

        async def make(rel: RelPath) -> None:
            async with self._audit.operation("file.mkdir", volume_name, vfid, path=str(rel)):
                await volume.mkdir(vfid, rel, parents=parents, exist_ok=exist_ok)

        outcomes = await asyncio.gather(*(make(r) for r in relpaths), return_exceptions=True)
        results: list[StorageProxyError | None] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, StorageProxyError):
                raise outcome
            results.append(outcome)
        return results

    async def move(
        self, actor: Actor, volume_name: str, vfid: VFolderID, src: RelPath, dst: RelPath
    ) -> None:
        async with self._changing(
            actor, "file.move", volume_name, vfid, Permission.RW, path=src
        ) as (volume, entry):
            entry.extra["destination"] = str(dst)
            await volume.move_file(vfid, src, dst, keep=await self._keep(volume_name, vfid))

    async def rename(
        self, actor: Actor, volume_name: str, vfid: VFolderID, relpath: RelPath, new_name: str
    ) -> None:
        await self.move(actor, volume_name, vfid, relpath, relpath.with_name(new_name))

    async def delete(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        recursive: bool = False,
        missing_ok: bool = False,
    ) -> None:
        """All of them or none (every path is checked first); ``missing_ok``: a path that is
        not there counts as deleted (the end state asked for is reached)."""
        path = relpaths[0] if len(relpaths) == 1 else None
        async with self._changing(
            actor, "file.delete", volume_name, vfid, Permission.RWD, path=path
        ) as (volume, entry):
            if path is None:
                entry.extra["paths"] = [str(p) for p in relpaths[:100]]
            keep = await self._keep(volume_name, vfid)
            for attempt in range(_MISSING_RETRIES):
                present = await _present(volume, vfid, relpaths) if missing_ok else relpaths
                try:
                    if present:
                        await volume.delete_files(vfid, present, recursive=recursive, keep=keep)
                    return
                except FileNotFound:
                    if not missing_ok or attempt == _MISSING_RETRIES - 1:
                        raise  # (missing_ok: one vanished between the look and the delete)

    async def start_delete(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        recursive: bool = False,
    ) -> str:
        """:meth:`delete` as a background task (paths already gone count as deleted); the
        caller's right and the vfolder are checked now, so a delete that cannot succeed is
        refused at once rather than started."""
        if self._bgtasks is None:
            raise InvalidParameter("background deletes are not available here")
        for rel in relpaths:
            if not rel.parts:
                raise InvalidPath("the vfolder root cannot be deleted as a file")
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RWD, op="file.delete")
        await volume.stat(vfid, RelPath.parse("."))  # a vfolder that is not there: 404 now

        async def delete(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, len(relpaths), "deleting", force=True)
            await self.delete(
                actor, volume_name, vfid, relpaths, recursive=recursive, missing_ok=True
            )
            await reporter.update(len(relpaths), message="deleted", force=True)
            return {"volume": volume_name, "vfid": str(vfid), "deleted": len(relpaths)}

        paths = [str(p) for p in relpaths[:100]]
        params = {"volume": volume_name, "vfid": str(vfid), "paths": paths}
        return await self._bgtasks.spawn("file-delete", delete, params=params)

    async def update_file_meta(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> FileMeta:
        volume = await self._gate.enter(
            actor, volume_name, vfid, Permission.RW, relpath=relpath, op="file.meta"
        )
        async with self._audit.operation("file.meta", volume_name, vfid, path=str(relpath)):
            return await volume.update_file_meta(
                vfid, relpath, content_type=content_type, tags=tags
            )


async def _look_up(volume: AbstractVolume, vfid: VFolderID, rel: RelPath) -> DirEntry:
    try:
        return await volume.stat(vfid, rel)
    except FileNotFound:
        raise FileNotFound(f"File not found: {rel}") from None


async def _present(
    volume: AbstractVolume, vfid: VFolderID, relpaths: Sequence[RelPath]
) -> list[RelPath]:
    found = []
    for rel in relpaths:
        try:
            await volume.stat(vfid, rel)
        except FileNotFound:
            continue
        found.append(rel)
    return found


def _need_archive(archive: bool, relpath: RelPath) -> None:
    if not archive:
        raise IsADirectory(f"{relpath} is a directory; ask for archive=true to get a zip")


def _str(path: RelPath | None) -> str | None:
    return None if path is None else str(path)


def etag_of(modified: datetime | float, size: int) -> str:
    """A validator for a file without a stored checksum: its mtime and size."""
    ns = int(modified.timestamp() * 1e9) if isinstance(modified, datetime) else int(modified)
    return f'"{ns:x}-{size:x}"'
