"""Snapshots of vfolders, as every backend shows them: a read-only tree per snapshot, and a
restore derived once from that tree and the volume's own writes.

A backend with ``Capability.SNAPSHOT`` takes, lists and deletes snapshots its own way (CephFS
``.snap`` directories, ONTAP snapshots, reflinked copies, manifests of object versions) and
hands out a :class:`SnapshotTree` to read one.  The tree has no way to write: read-only is the
type, not a check in every door.  Nothing of a snapshot is ever reachable through a vfolder path.

Restoring into place makes a directory (or the whole vfolder) what the snapshot holds: changed
files are replaced, deleted ones come back, files created since are removed -- each replaced or
removed file kept as a version when the vfolder keeps versions.  Restoring into a new directory
only adds.  :func:`restore_by_copy` does it with the tree and the volume's writes (any backend);
POSIX volumes do the same on descriptors with reflinks (``posix_snapshots``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from ..core.errors import FileExists, FileNotFound
from ..core.files import LocalFile, ReadOptions, WriteOptions
from ..core.paths import RelPath
from ..core.snapshots import Progress, RestoreOptions, RestoreReport
from ..core.types import DirEntry, DirEntryType, VFolderID

if TYPE_CHECKING:
    from .abc import AbstractVolume


class SnapshotTree(ABC):
    """One snapshot's files, read-only."""

    @abstractmethod
    async def scandir(
        self, relpath: RelPath, *, recursive: bool = False, limit: int | None = None
    ) -> list[DirEntry]:
        """Entries below ``relpath`` (paths relative to the snapshot's root), at most ``limit``."""

    @abstractmethod
    async def stat(self, relpath: RelPath) -> DirEntry: ...

    @abstractmethod
    def read(self, relpath: RelPath, options: ReadOptions = ReadOptions()) -> AsyncIterator[bytes]:
        """A file's bytes (IsADirectory for a directory)."""

    async def local_file(self, relpath: RelPath, *, read_up_to: int = 0) -> LocalFile | None:
        """The file or directory opened for reading (a local tree), or None (stream it)."""
        return None


def _same(a: DirEntry, b: DirEntry) -> bool:
    return a.type == b.type and a.stat.size == b.stat.size and a.stat.modified == b.stat.modified


async def _files_below(
    volume: AbstractVolume, vfid: VFolderID, rel: RelPath
) -> dict[str, DirEntry]:
    try:
        entries = [e async for e in volume.scandir(vfid, rel, recursive=True, limit=None)]
    except FileNotFound:
        return {}
    return {e.path: e for e in entries}


#: Puts one file of the tree (``rel``) at ``dest`` in the vfolder; the bytes it stored.
PutFile = Callable[["SnapshotTree", RelPath, RelPath, RestoreOptions], Awaitable[int]]


def by_write(volume: AbstractVolume, vfid: VFolderID) -> PutFile:
    """The tree's bytes through the volume's own write (quota, checksums, versions kept)."""

    async def put(tree: SnapshotTree, rel: RelPath, dest: RelPath, options: RestoreOptions) -> int:
        write = WriteOptions(checksums=True, keep=options.keep)
        return (await volume.write(vfid, dest, tree.read(rel), write)).size

    return put


async def restore_by_copy(
    volume: AbstractVolume,
    vfid: VFolderID,
    snapshot_id: str,
    options: RestoreOptions,
    progress: Progress | None = None,
    *,
    put: PutFile | None = None,
) -> RestoreReport:
    """Restore through the tree's reads and the volume's own writes (any backend); ``put``
    puts a file another way (a storage-side copy)."""
    put = put or by_write(volume, vfid)
    tree = await volume.snapshot_tree(vfid, snapshot_id)
    targets = options.relpaths or (RelPath(()),)
    found = [(rel, await tree.stat(rel)) for rel in targets]  # 404 before anything changes
    if options.into is not None:
        await _must_be_new(volume, vfid, options.into)
    report = RestoreReport()
    for rel, entry in found:
        dest = RelPath(options.into.parts + rel.parts) if options.into else rel
        if entry.type is DirEntryType.DIRECTORY:
            await _restore_dir(volume, vfid, tree, rel, dest, options, report, progress, put)
        else:
            await _restore_file(tree, rel, dest, options, report, progress, put)
    return report


async def _must_be_new(volume: AbstractVolume, vfid: VFolderID, into: RelPath) -> None:
    try:
        await volume.stat(vfid, into)
    except FileNotFound:
        return
    raise FileExists(f"{into} exists; restore into a new directory")


async def _restore_file(
    tree: SnapshotTree,
    rel: RelPath,
    dest: RelPath,
    options: RestoreOptions,
    report: RestoreReport,
    progress: Progress | None,
    put: PutFile,
) -> None:
    entry = await tree.stat(rel)
    size = await put(tree, rel, dest, options)
    report.files += 1
    report.bytes += size
    if progress is not None:
        progress.add(entry.stat.size)


async def _restore_dir(
    volume: AbstractVolume,
    vfid: VFolderID,
    tree: SnapshotTree,
    rel: RelPath,
    dest: RelPath,
    options: RestoreOptions,
    report: RestoreReport,
    progress: Progress | None,
    put: PutFile,
) -> None:
    wanted = await tree.scandir(rel, recursive=True, limit=None)
    base = len(rel.parts)
    current = {} if options.into else await _files_below(volume, vfid, dest)
    if dest.parts:
        await volume.mkdir(vfid, dest, parents=True, exist_ok=True)
    keep_paths: set[str] = set()
    for entry in wanted:
        sub = RelPath.parse(entry.path)
        target = RelPath(dest.parts + sub.parts[base:])
        keep_paths.add(str(target))
        now = current.get(str(target))
        if entry.type is DirEntryType.DIRECTORY:
            if now is None or now.type is not DirEntryType.DIRECTORY:
                if now is not None:
                    await volume.delete_files(vfid, [target], recursive=True, keep=options.keep)
                await volume.mkdir(vfid, target, parents=True, exist_ok=True)
        elif entry.type is DirEntryType.FILE:
            if now is not None and _same(now, entry):
                continue
            if now is not None and now.type is DirEntryType.DIRECTORY:
                await volume.delete_files(vfid, [target], recursive=True, keep=options.keep)
            await _restore_file(tree, sub, target, options, report, progress, put)
    extra = {path for path in current if path not in keep_paths}
    for path in sorted(extra):
        gone = RelPath.parse(path)
        if str(gone.parent) in extra:
            continue  # removed with the directory that holds it
        await volume.delete_files(vfid, [gone], recursive=True, keep=options.keep)
