"""Snapshots of vfolders, for every door: the rules once.

Taking, deleting and restoring a snapshot needs RW on the vfolder; listing and browsing one needs
RO -- both through the :class:`Gate`, so a refusal is audited like any other.  Each change is
one audit line (``snapshot.create``, ``snapshot.delete``, ``snapshot.restore``).

What is quick runs at once: a native snapshot (CephFS ``.snap``) is taken or dropped in one
call.  What copies runs as a background task with progress (the volume counts bytes from its
worker threads, a watcher reports them): a snapshot taken by copies, its deletion, and every
restore.  A restore into place holds the vfolder ``restoring`` (writes answer 409 meanwhile);
a snapshot taken by copies does not hold it: a file written meanwhile is in the snapshot as it
was before or after the write, never in part.  Where a snapshot consumes space (a backend's
``snapshot-quota``), the volume refuses one that does not fit the scope's quota, and the quota
alerts see it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import FileNotFound, InvalidParameter, IsADirectory
from ..core.files import ReadOptions
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.snapshot_policy import check_manual_name
from ..core.snapshots import (
    Progress,
    RestoreOptions,
    SnapshotInfo,
    check_snapshot_id,
    new_snapshot_id,
)
from ..core.types import Capability, DirEntry, DirEntryType, VFolderID
from ..volumes.abc import AbstractVolume
from ..volumes.snapshots import SnapshotTree
from .access import Actor
from .archive import Held, SnapshotZip
from .audit import AuditLog
from .bgtasks import BackgroundTaskService, ProgressReporter
from .files import Download, _need_archive
from .gate import Gate
from .keeping import VersionSettings
from .quotas import QuotaService
from .usage import UsageService

PROGRESS_POLL = 0.5


#: The capability this service needs of a volume, and its name in a refusal.
_SNAPSHOTS = (Capability.SNAPSHOT, "snapshots")


@dataclass(frozen=True, slots=True)
class Started:
    """A change that runs as a background task, and the snapshot it is about."""

    task_id: str
    snapshot_id: str


class SnapshotService:
    def __init__(
        self,
        gate: Gate,
        bgtasks: BackgroundTaskService,
        audit: AuditLog,
        usage: UsageService,
        quotas: QuotaService,
        versions: VersionSettings | None = None,
    ) -> None:
        self._versions = versions  # a restore in place keeps what it replaces as versions
        self._gate = gate
        self._bgtasks = bgtasks
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
            actor, volume_name, vfid, needed, _SNAPSHOTS, op=op, relpath=relpath
        )

    # -- taking, listing, deleting -------------------------------------------------------------
    async def create(
        self, actor: Actor, volume_name: str, vfid: VFolderID, name: str | None = None
    ) -> SnapshotInfo | Started:
        """A native snapshot is taken at once (its info); one made by copies is a task.  The
        ``auto-`` names are the snapshot policies' (which prune only theirs)."""
        if name is None:
            return await self.take(actor, volume_name, vfid, new_snapshot_id())
        return await self.take(actor, volume_name, vfid, check_manual_name(check_snapshot_id(name)))

    async def take(
        self, actor: Actor, volume_name: str, vfid: VFolderID, snapshot_id: str
    ) -> SnapshotInfo | Started:
        """:meth:`create` under any valid name (a policy's included)."""
        check_snapshot_id(snapshot_id)
        volume = await self._enter(actor, volume_name, vfid, Permission.RW, "snapshot.create")
        caps = await volume.get_capabilities()
        if Capability.NATIVE_SNAPSHOT in caps:
            return await self._create(volume, volume_name, vfid, snapshot_id, None)

        async def copy(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, None, "copying the vfolder", force=True)
            progress = Progress()
            async with _watched(progress, reporter):
                info = await self._create(volume, volume_name, vfid, snapshot_id, progress)
            await reporter.update(progress.done, message="taken", force=True)
            return {"volume": volume_name, "vfid": str(vfid), **info.to_json()}

        task_id = await self._bgtasks.spawn(
            "snapshot-create",
            copy,
            params={"volume": volume_name, "vfid": str(vfid), "snapshot_id": snapshot_id},
        )
        return Started(task_id, snapshot_id)

    async def _create(
        self,
        volume: AbstractVolume,
        volume_name: str,
        vfid: VFolderID,
        snapshot_id: str,
        progress: Progress | None,
    ) -> SnapshotInfo:
        async with self._audit.operation("snapshot.create", volume_name, vfid) as line:
            line.extra["snapshot_id"] = snapshot_id
            info = await volume.create_snapshot(vfid, snapshot_id, progress)
            line.bytes = info.size
        await self._quotas.observe_written(volume_name, vfid)
        return info

    async def list_snapshots(
        self, actor: Actor, volume_name: str, vfid: VFolderID
    ) -> list[SnapshotInfo]:
        """Oldest first; an empty list where the volume takes none (it cannot have any)."""
        volume = await self._gate.enter(actor, volume_name, vfid, Permission.RO, op="snapshot.list")
        return await volume.list_snapshots(vfid)

    async def delete(
        self, actor: Actor, volume_name: str, vfid: VFolderID, snapshot_id: str
    ) -> Started | None:
        """A native snapshot is dropped at once (None); one made by copies in a task."""
        check_snapshot_id(snapshot_id)
        volume = await self._enter(actor, volume_name, vfid, Permission.RW, "snapshot.delete")

        async def delete() -> None:
            async with self._audit.operation("snapshot.delete", volume_name, vfid) as line:
                line.extra["snapshot_id"] = snapshot_id
                await volume.delete_snapshot(vfid, snapshot_id)

        if Capability.NATIVE_SNAPSHOT in await volume.get_capabilities():
            await delete()
            return None
        await volume.snapshot_tree(vfid, snapshot_id)  # 404 now, not in the task

        async def task(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, 1, "removing the snapshot", force=True)
            await delete()
            await reporter.update(1, 1, "deleted", force=True)
            return {"volume": volume_name, "vfid": str(vfid), "snapshot_id": snapshot_id}

        task_id = await self._bgtasks.spawn(
            "snapshot-delete",
            task,
            params={"volume": volume_name, "vfid": str(vfid), "snapshot_id": snapshot_id},
        )
        return Started(task_id, snapshot_id)

    # -- restoring -----------------------------------------------------------------------------
    async def restore(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        snapshot_id: str,
        *,
        relpaths: tuple[RelPath, ...] = (),
        into: RelPath | None = None,
    ) -> Started:
        """Bring back the whole vfolder or ``relpaths``, into place or into ``into`` (a new
        directory); always a task.  In place the vfolder is ``restoring`` until it ends."""
        check_snapshot_id(snapshot_id)
        if into is not None and not into.parts:
            raise InvalidParameter("restore into a new directory below the vfolder root")
        volume = await self._enter(
            actor, volume_name, vfid, Permission.RW, "snapshot.restore", relpath=into
        )
        for rel in relpaths:
            await volume.check_path(vfid, rel)
        tree = await volume.snapshot_tree(vfid, snapshot_id)  # 404s now, not in the task
        for rel in relpaths:
            await tree.stat(rel)
        keep = None
        if into is None and self._versions is not None:
            keep = await self._versions.keep(volume_name, vfid)
        options = RestoreOptions(relpaths=relpaths, into=into, keep=keep)
        names = [str(r) for r in relpaths]
        into_name = None if into is None else str(into)
        params: dict[str, Any] = {
            "volume": volume_name,
            "vfid": str(vfid),
            "snapshot_id": snapshot_id,
            "relpaths": names,
            "into": into_name,
        }

        async def task(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, None, "measuring the snapshot", force=True)
            progress = Progress(total=await _size_of(tree, relpaths))
            adds = progress.total or 0
            if into is None and keep is None:  # what it replaces is dropped, not kept
                adds -= await _current_size(volume, vfid, relpaths)
            await reporter.update(0, progress.total, "restoring", force=True)
            try:
                async with (
                    self._audit.operation(
                        "snapshot.restore", volume_name, vfid, path=into_name
                    ) as line,
                    self._quotas.copying(volume_name, vfid, max(0, adds)),
                    _watched(progress, reporter),
                ):
                    line.extra.update(snapshot_id=snapshot_id, relpaths=names[:100])
                    report = await volume.restore_snapshot(vfid, snapshot_id, options, progress)
                    line.bytes = report.bytes
            finally:
                await self._usage.changed(volume_name, vfid)
            await self._quotas.observe_written(volume_name, vfid)
            await reporter.update(progress.done, message="restored", force=True)
            return {**params, **report.to_json()}

        busy = [] if into is not None else [(volume_name, str(vfid), "restoring")]
        task_id = await self._bgtasks.spawn("snapshot-restore", task, params=params, busy=busy)
        return Started(task_id, snapshot_id)

    async def wait(self, started: Started) -> dict[str, Any]:
        """The task's result once it is done (its error, if it failed)."""
        record = await self._bgtasks.wait(started.task_id)
        return dict(record.result or {})

    # -- browsing (read-only) ------------------------------------------------------------------
    async def tree(
        self, actor: Actor, volume_name: str, vfid: VFolderID, snapshot_id: str
    ) -> SnapshotTree:
        check_snapshot_id(snapshot_id)
        volume = await self._enter(actor, volume_name, vfid, Permission.RO, "snapshot.browse")
        return await volume.snapshot_tree(vfid, snapshot_id)

    async def list_dir(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        snapshot_id: str,
        relpath: RelPath,
        *,
        recursive: bool = False,
        limit: int | None = 10_000,
    ) -> list[DirEntry]:
        tree = await self.tree(actor, volume_name, vfid, snapshot_id)
        async with self._gate.costly(actor, vfid):  # a fair share, as a vfolder's listings
            return await tree.scandir(relpath, recursive=recursive, limit=limit)

    async def open_download(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        snapshot_id: str,
        relpath: RelPath,
        *,
        archive: bool = False,
        read_up_to: int = 0,
    ) -> Download:
        """A file of the snapshot (opened where it is local), or a directory as a zip."""
        tree = await self.tree(actor, volume_name, vfid, snapshot_id)
        name = relpath.name or f"{vfid.folder_id.hex}-{snapshot_id}"
        async with self._audit.operation(
            "snapshot.download", volume_name, vfid, path=str(relpath)
        ) as line:
            line.extra["snapshot_id"] = snapshot_id
            entry = await tree.stat(relpath)
            if entry.type is DirEntryType.DIRECTORY:
                _need_archive(archive, relpath)
                release = await self._gate.hold_costly(actor, vfid)  # until the zip ends
                return Download(f"{name}.zip", tree=Held(SnapshotZip(tree, relpath), release))
            if entry.type is not DirEntryType.FILE:
                raise IsADirectory(f"not a regular file: {relpath}")
            local = await tree.local_file(relpath, read_up_to=read_up_to)
            if local is not None:
                line.bytes = local.stat.st_size
                return Download(name, local=local)
            line.bytes = entry.stat.size
            return Download(name, entry=entry, reader=_reader(tree, relpath))


def _reader(tree: SnapshotTree, rel: RelPath) -> Callable[[int, int], AsyncIterator[bytes]]:
    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return tree.read(rel, ReadOptions(offset=offset, length=length))

    return read


async def _size_of(tree: SnapshotTree, relpaths: tuple[RelPath, ...]) -> int | None:
    """Bytes a restore copies (for progress); None if the listing is too long to count."""
    total = 0
    for rel in relpaths or (RelPath(()),):
        entry = await tree.stat(rel)
        if entry.type is not DirEntryType.DIRECTORY:
            total += entry.stat.size
            continue
        entries = await tree.scandir(rel, recursive=True, limit=1_000_000)
        total += sum(e.stat.size for e in entries if e.type is DirEntryType.FILE)
    return total


async def _current_size(
    volume: AbstractVolume, vfid: VFolderID, relpaths: tuple[RelPath, ...]
) -> int:
    """Bytes of the vfolder a restore in place replaces (what is not there counts 0)."""
    if not relpaths:
        return (await volume.get_usage(vfid)).used_bytes
    total = 0
    for rel in relpaths:
        try:
            entry = await volume.stat(vfid, rel)
        except FileNotFound:
            continue
        if entry.type is not DirEntryType.DIRECTORY:
            total += entry.stat.size
            continue
        async for e in volume.scandir(vfid, rel, recursive=True, limit=None):
            if e.type is DirEntryType.FILE:
                total += e.stat.size
    return total


@contextlib.asynccontextmanager
async def _watched(progress: Progress, reporter: ProgressReporter) -> AsyncIterator[None]:
    """Report ``progress`` (advanced by the volume's worker threads) while the block runs."""

    async def watch() -> None:
        while True:
            await asyncio.sleep(PROGRESS_POLL)
            await reporter.update(progress.done, progress.total)

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


__all__ = ["SnapshotService", "Started"]
