"""Snapshots on POSIX volumes: copies of the vfolder kept beside it, reflinked where the
filesystem can (XFS ``reflink=1``, btrfs), copied otherwise; and restores on descriptors.

A snapshot is ``<quota scope>/.sp-snapshots/<vfolder hex>/<id>/`` with a record ``<id>.json``
beside it: outside the vfolder, inside its quota scope (it counts against the scope's quota:
``Capability.SNAPSHOT_QUOTA``).  It is assembled under a staging name and renamed into place,
so a listing never shows half a snapshot.  Files the proxy is still writing are staged under
``.sp-tmp-`` names and left out: a file being written is in a snapshot as it was before or
after the write, never in part.  Backends whose storage snapshots natively (CephFS, ONTAP)
override taking, listing and deleting; reading and restoring stay these.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from ..core.errors import (
    FileExists,
    FileNotFound,
    NotSupported,
    QuotaExceeded,
    SnapshotExists,
    SnapshotNotFound,
)
from ..core.files import KeepVersions
from ..core.paths import RelPath
from ..core.snapshots import (
    Progress,
    RestoreOptions,
    RestoreReport,
    SnapshotInfo,
    check_snapshot_id,
)
from ..core.types import Capability, DirEntryType, VFolderID
from . import beneath, fsremove, fstree, posix_tree
from . import posix_fs as fs
from .beneath import errors_as, opened
from .posix_tree import PosixTree
from .posix_versions import PosixVersions
from .snapshots import SnapshotTree
from .staging import is_abandoned_at

SNAPSHOTS_DIR = ".sp-snapshots"
_LIST = fstree.O_LIST_DIR | os.O_NOFOLLOW


class PosixSnapshots(PosixVersions):
    """The part of :class:`~.posix.BasePosixVolume` that snapshots (versions come with it: a
    restore into place keeps what it replaces)."""

    # Provided by the base (declared, not stubbed: a stub here would shadow them in the MRO).
    hidden_names: ClassVar[frozenset[str]]
    is_staging_name: Callable[[str], bool]

    @abstractmethod
    def vfolder_path(self, vfid: VFolderID) -> Path: ...

    def _snapshots_supported(self) -> None:
        """A subclass that drops ``Capability.SNAPSHOT`` refuses them (never a half-support)."""
        if Capability.SNAPSHOT not in self.capabilities:
            raise NotSupported("snapshots", self.backend_name)

    def snapshots_area(self, vfid: VFolderID) -> Path:
        return self.quota_scope_path(vfid.quota_scope_id) / SNAPSHOTS_DIR / vfid.folder_id.hex

    def snapshot_path(self, vfid: VFolderID, snapshot_id: str) -> Path:
        """Where a snapshot's files are (its root)."""
        return self.snapshots_area(vfid) / snapshot_id

    # -- taking, listing, deleting: copies ----------------------------------------------------
    async def create_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        usage = await self.get_usage(vfid)
        remaining = await self.quota_model.remaining_bytes(vfid.quota_scope_id)
        if remaining is not None and usage.used_bytes > remaining:
            raise QuotaExceeded(
                f"a snapshot of {vfid} needs {usage.used_bytes} bytes of its quota scope; "
                f"{remaining} are left",
                remaining_bytes=remaining,
            )
        if progress is not None:
            progress.total = usage.used_bytes
        with errors_as(snapshot_id):
            info = await self.run_blocking(self._copy_snapshot, vfid, snapshot_id, progress)
        self.quota_model.invalidate(vfid)
        return info

    def _copy_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None
    ) -> SnapshotInfo:
        area = self.snapshots_area(vfid)
        self._existing_vfolder(vfid)
        area.mkdir(mode=0o700, parents=True, exist_ok=True)
        with opened(beneath.open_root(area)) as area_fd:
            _reap(area_fd)
            if _exists(area_fd, snapshot_id):
                raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}")
            d, name = fs.create_locked(area_fd, directory=True)
            try:
                with opened(d):  # locked until renamed into place
                    with self._root(vfid) as root, opened(os.open(".", _LIST, dir_fd=root)) as s:
                        added = None if progress is None else progress.add
                        files, nbytes = fstree.copy_tree(s, d, added, self.is_staging_name)
                        os.chmod(d, stat_mod.S_IMODE(os.fstat(s).st_mode))
                    created = time.time()
                    record = {"created": created, "size": nbytes, "files": files}
                    fs.write_json(area_fd, f"{snapshot_id}.json", record)
                    if _exists(area_fd, snapshot_id):
                        raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}")
                    os.rename(name, snapshot_id, src_dir_fd=area_fd, dst_dir_fd=area_fd)
            except BaseException:
                _discard(area_fd, name)
                raise
        return SnapshotInfo(snapshot_id, datetime.fromtimestamp(created, UTC), nbytes)

    async def list_snapshots(self, vfid: VFolderID) -> list[SnapshotInfo]:
        if Capability.SNAPSHOT not in self.capabilities:
            return await super().list_snapshots(vfid)

        def listed() -> list[SnapshotInfo]:
            self._existing_vfolder(vfid)
            try:
                area = beneath.open_root(self.snapshots_area(vfid))
            except FileNotFoundError:
                return []
            with opened(area):
                found = []
                for name, st in fstree.list_dir_names(area):
                    if stat_mod.S_ISDIR(st.st_mode) and not name.startswith("."):
                        record = fs.read_json(area, f"{name}.json") or {}
                        created = float(record.get("created", st.st_mtime))
                        when = datetime.fromtimestamp(created, UTC)
                        found.append(SnapshotInfo(name, when, record.get("size")))
            return sorted(found, key=lambda s: (s.created, s.id))

        return await self.run_blocking(listed)

    async def delete_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> None:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)

        def delete() -> None:
            self._existing_vfolder(vfid)
            try:
                area_fd = beneath.open_root(self.snapshots_area(vfid))
            except FileNotFoundError:
                raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}") from None
            with opened(area_fd):
                if not _exists(area_fd, snapshot_id):
                    raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}")
                doomed = fs.staging_name()  # out of sight at once, then removed
                os.rename(snapshot_id, doomed, src_dir_fd=area_fd, dst_dir_fd=area_fd)
                os.unlink(f"{snapshot_id}.json", dir_fd=area_fd)
                fsremove.remove_tree(area_fd, doomed)

        await self.run_blocking(delete)
        self.quota_model.invalidate(vfid)

    def _side_areas(self, vfid: VFolderID) -> list[Path]:
        return [*super()._side_areas(vfid), self.snapshots_area(vfid)]

    # -- reading and restoring: the same for copies and native snapshots ----------------------
    async def snapshot_tree(self, vfid: VFolderID, snapshot_id: str) -> SnapshotTree:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        path = await self.run_blocking(self._snapshot_root, vfid, snapshot_id)
        return PosixTree(
            path, self.run_blocking, hidden=self.hidden_names, skip=self.is_staging_name
        )

    def _snapshot_root(self, vfid: VFolderID, snapshot_id: str) -> Path:
        self._existing_vfolder(vfid)
        path = self.snapshot_path(vfid, snapshot_id)
        try:
            os.close(beneath.open_root(path))
        except (FileNotFoundError, NotADirectoryError):
            raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}") from None
        return path

    @contextmanager
    def _snapshot_fd(self, vfid: VFolderID, snapshot_id: str) -> Iterator[int]:
        fd = beneath.open_root(self._snapshot_root(vfid, snapshot_id))
        with opened(fd), beneath.hidden_below(fd, self.hidden_names):
            yield fd

    async def restore_snapshot(
        self,
        vfid: VFolderID,
        snapshot_id: str,
        options: RestoreOptions,
        progress: Progress | None = None,
    ) -> RestoreReport:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        try:
            return await self.run_blocking(self._restore, vfid, snapshot_id, options, progress)
        finally:
            self.quota_model.invalidate(vfid)

    def _restore(
        self,
        vfid: VFolderID,
        snapshot_id: str,
        options: RestoreOptions,
        progress: Progress | None,
    ) -> RestoreReport:
        report = RestoreReport()
        with self._snapshot_fd(vfid, snapshot_id) as snap, self._root(vfid) as root:
            targets = options.relpaths or (RelPath(()),)
            found = [(rel, posix_tree.stat_at(snap, rel)) for rel in targets]  # 404 first
            if options.into is not None:
                with errors_as(options.into):
                    _must_be_new(root, options.into)
            restore = _Restore(self, vfid, snap, root, options, report, progress)
            for rel, entry in found:
                dest = RelPath(options.into.parts + rel.parts) if options.into else rel
                with errors_as(dest):
                    if entry.type is DirEntryType.DIRECTORY:
                        restore.directory(rel, dest)
                    else:
                        restore.file(rel, dest)
        return report


def _discard(dir_fd: int, name: str) -> None:
    """Remove a staging (any depth) after a failed or finished copy; best effort."""
    with contextlib.suppress(OSError):
        fsremove.remove_tree(dir_fd, name)


def _exists(area_fd: int, name: str) -> bool:
    try:
        beneath.lstat_at(area_fd, name)
    except FileNotFoundError:
        return False
    return True


def _reap(area_fd: int) -> None:
    """Stagings of snapshots whose taker died (nobody holds their lock)."""
    for name, _ in fstree.list_dir_names(area_fd):
        if name.startswith(fs.STAGING_MARK) and is_abandoned_at(area_fd, name):
            _discard(area_fd, name)


def _must_be_new(root: int, into: RelPath) -> None:
    try:
        posix_tree.stat_at(root, into)
    except FileNotFound:
        return
    raise FileExists(f"{into} exists; restore into a new directory")


class _Restore:
    """One restore's steps on held descriptors: the snapshot's root and the vfolder's."""

    def __init__(
        self,
        volume: PosixSnapshots,
        vfid: VFolderID,
        snap: int,
        root: int,
        options: RestoreOptions,
        report: RestoreReport,
        progress: Progress | None,
    ) -> None:
        self.volume, self.vfid, self.snap, self.root = volume, vfid, snap, root
        self.into = options.into is not None
        self.keep: KeepVersions | None = None if self.into else options.keep
        self.report, self.progress = report, progress

    def _copied(self, n: int) -> None:
        self.report.files += 1
        self.report.bytes += n
        if self.progress is not None:
            self.progress.add(n)

    def file(self, rel: RelPath, dest: RelPath) -> None:
        """One file (or link) back in place or in the new directory, replacing what is there."""
        with opened(beneath.open_parent(self.snap, rel)) as sp:
            st = beneath.lstat_at(sp, rel.name)
            if stat_mod.S_ISLNK(st.st_mode):
                return self._link(os.readlink(rel.name, dir_fd=sp), dest)
            src = beneath.open_regular(sp, rel.name)
        with opened(src):
            parent, name = self.volume._write_target(self.root, dest, True)
            with opened(parent):
                staged = self.volume._open_staged(parent)
                area, fd, sname = staged
                try:
                    n = fstree.clone_or_copy(src, fd)
                    os.fchmod(fd, stat_mod.S_IMODE(st.st_mode))
                    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                    at = (parent, name)

                    def publish() -> None:
                        fs.publish_staged(area, sname, fd, parent, name, True)

                    self.volume._replace(self.vfid, dest, self.keep, "restore", at, publish)
                finally:
                    fs.leave_staged(staged)
        self._copied(n)

    def _link(self, target: str, dest: RelPath) -> None:
        parent = beneath.make_dirs(self.root, dest.parent)
        with opened(parent):
            tmp = fs.staging_name()
            os.symlink(target, tmp, dir_fd=parent)
            os.rename(tmp, dest.name, src_dir_fd=parent, dst_dir_fd=parent)

    def directory(self, rel: RelPath, dest: RelPath) -> None:
        """A directory made what the snapshot holds: assembled under a staging name inside it
        (so inside its quota realm), then swapped in entry by entry."""
        with opened(beneath.open_beneath(self.snap, rel.parts, _LIST)) as src:
            if self.into or not self._is_dir(dest):
                return self._new_directory(src, dest)
            with opened(beneath.open_beneath(self.root, dest.parts, _LIST)) as target:
                staged, name = fs.create_locked(target, directory=True)
                try:
                    with opened(staged):
                        skip = self.volume.is_staging_name
                        files, nbytes = fstree.copy_tree(src, staged, self._bytes, skip)
                        self.report.files += files
                        self._keep_changed(dest, src, target)
                        self._swap_in(target, staged)
                        st = os.fstat(src)
                        os.chmod(target, stat_mod.S_IMODE(st.st_mode))
                finally:
                    _discard(target, name)

    def _bytes(self, n: int) -> None:
        self.report.bytes += n
        if self.progress is not None:
            self.progress.add(n)

    def _is_dir(self, dest: RelPath) -> bool:
        try:
            return posix_tree.stat_at(self.root, dest).type is DirEntryType.DIRECTORY
        except FileNotFound:
            return False

    def _new_directory(self, src: int, dest: RelPath) -> None:
        """A directory where there was none (restore into a new directory, or in place of
        something that is not a directory)."""
        if dest.parts and not self._is_dir(dest):
            try:
                with opened(beneath.open_parent(self.root, dest)) as p:
                    st = beneath.lstat_at(p, dest.name)
                    self.volume._remove(self.vfid, dest, p, st, True, self.keep)
            except FileNotFoundError:
                pass
        parent = beneath.make_dirs(self.root, dest.parent)
        with opened(parent):
            staged, name = fs.create_locked(parent, directory=True)
            try:
                with opened(staged):
                    skip = self.volume.is_staging_name
                    files, _ = fstree.copy_tree(src, staged, self._bytes, skip)
                    self.report.files += files
                    os.chmod(staged, stat_mod.S_IMODE(os.fstat(src).st_mode))
                    os.rename(name, dest.name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                _discard(parent, name)
                raise

    def _keep_changed(self, dest: RelPath, src: int, target: int) -> None:
        """Before the swap: every file that is about to be replaced or removed becomes a version
        (files the snapshot holds unchanged are not kept twice)."""
        if self.keep is None or self.keep.limit <= 0:
            return
        wanted = {e.path: e.stat for _, e in fstree.walk_files(src)}
        for parent, entry in fstree.walk_files(target):
            if any(self.volume.is_staging_name(p) for p in entry.path.split("/")):
                continue
            old = wanted.get(entry.path)
            if old is not None and (old.st_size, old.st_mtime_ns) == (
                entry.stat.st_size,
                entry.stat.st_mtime_ns,
            ):
                continue
            path = RelPath(dest.parts + tuple(entry.path.split("/")))
            self.volume._replace(
                self.vfid, path, self.keep, "restore", (parent, entry.name), _nothing
            )

    def _swap_in(self, target: int, staged: int) -> None:
        """Clear the target (but the staging) and move the staged entries in."""
        for name, st in fstree.list_dir(target):
            if not self.volume.is_staging_name(name):
                fs.remove_entry(target, name, st, recursive=True)
        for name, _ in fstree.list_dir(staged):
            os.rename(name, name, src_dir_fd=staged, dst_dir_fd=target)


def _nothing() -> None:
    """A replacement that changes nothing: the version is what is kept."""


__all__ = ["SNAPSHOTS_DIR", "PosixSnapshots"]
