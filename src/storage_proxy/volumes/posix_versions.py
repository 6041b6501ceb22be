"""Versions of files on POSIX volumes: what an overwrite, a move-over or a delete replaces is kept
(``versionstore``) before the change, and listed, read, restored and deleted here.

The part of :class:`~.posix.BasePosixVolume` that keeps versions; the write, publish, move and
delete paths of the base call :meth:`PosixVersions._replace` and :meth:`PosixVersions._remove`
on the descriptors they already hold, so a version is always the inode that was replaced.
"""

from __future__ import annotations

import os
import stat as stat_mod
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ..core.errors import NotSupported, VersionNotFound
from ..core.files import KeepVersions, LocalFile, ReadOptions
from ..core.paths import RelPath
from ..core.snapshots import FileVersion
from ..core.types import Capability, FileMeta, QuotaScopeID, VFolderID
from . import beneath, filemeta, fstree, posix_tree, versionstore
from . import posix_fs as fs
from .abc import AbstractVolume
from .beneath import errors_as, opened
from .versionstore import VERSIONS_DIR


def _keeps(keep: KeepVersions | None) -> bool:
    return keep is not None and keep.limit > 0


class PosixVersions(AbstractVolume):
    @abstractmethod
    def quota_scope_path(self, qsid: QuotaScopeID) -> Path: ...

    @abstractmethod
    def _root(self, vfid: VFolderID, path: str | None = None) -> AbstractContextManager[int]: ...

    @abstractmethod
    def _existing_vfolder(self, vfid: VFolderID) -> Path: ...

    @abstractmethod
    def _write_target(self, root: int, rel: RelPath, overwrite: bool) -> tuple[int, str]: ...

    @abstractmethod
    def _open_staged(self, parent: int) -> tuple[int, int, str]: ...

    def _versions_supported(self) -> None:
        if Capability.FILE_VERSIONS not in self.capabilities:
            raise NotSupported("file versions", self.backend_name)

    def _keeps(self, keep: KeepVersions | None) -> bool:
        """Whether an operation keeps what it replaces (never where versions are not declared)."""
        return _keeps(keep) and Capability.FILE_VERSIONS in self.capabilities

    def versions_area(self, vfid: VFolderID) -> Path:
        """Where the vfolder's versions are kept: in its quota scope, outside the vfolder."""
        return self.quota_scope_path(vfid.quota_scope_id) / VERSIONS_DIR / vfid.folder_id.hex

    # -- the hooks of the write paths (blocking) ---------------------------------------------
    @contextmanager
    def _held(self, vfid: VFolderID, rel: RelPath, create: bool) -> Iterator[int | None]:
        with versionstore.held(self.versions_area(vfid), rel, create=create) as vdir:
            yield vdir

    def _replace(
        self,
        vfid: VFolderID,
        rel: RelPath,
        keep: KeepVersions | None,
        reason: str,
        at: tuple[int, str],
        replace: Callable[[], None],
    ) -> None:
        """Run ``replace``, which puts something new at ``at`` (parent descriptor, name); with
        ``keep``, the file there is kept as a version first (and dropped again if the
        replacement fails), both under the file's version lock."""
        if not self._keeps(keep):
            replace()
            return
        assert keep is not None
        with self._held(vfid, rel, True) as vdir:
            assert vdir is not None
            vid = versionstore.keep(vdir, at[0], at[1], keep, reason)
            try:
                replace()
            except BaseException:
                if vid is not None:
                    versionstore.remove(vdir, vid)
                raise

    def _remove(
        self,
        vfid: VFolderID,
        rel: RelPath,
        parent: int,
        st: os.stat_result,
        recursive: bool,
        keep: KeepVersions | None,
    ) -> None:
        """Delete one entry; with ``keep`` every regular file it is (or holds) becomes a
        version instead of being lost."""
        if self._keeps(keep) and stat_mod.S_ISREG(st.st_mode):
            assert keep is not None
            with self._held(vfid, rel, True) as vdir:
                assert vdir is not None
                versionstore.keep(vdir, parent, rel.name, keep, "delete", remove=True)
            return
        if self._keeps(keep) and stat_mod.S_ISDIR(st.st_mode) and recursive:
            assert keep is not None
            with opened(fstree.open_subdir(parent, rel.name) or os.dup(parent)) as top:
                if os.path.samestat(os.fstat(top), st):
                    for sub, entry in fstree.walk_files(top):
                        path = RelPath(rel.parts + tuple(entry.path.split("/")))
                        with self._held(vfid, path, True) as vdir:
                            assert vdir is not None
                            versionstore.keep(vdir, sub, entry.name, keep, "delete", remove=True)
        fs.remove_entry(parent, rel.name, st, recursive)

    # -- the interface -----------------------------------------------------------------------
    async def list_versions(self, vfid: VFolderID, relpath: RelPath) -> list[FileVersion]:
        if Capability.FILE_VERSIONS not in self.capabilities:
            return await super().list_versions(vfid, relpath)

        def listed() -> list[FileVersion]:
            self._existing_vfolder(vfid)
            with self._held(vfid, relpath, False) as vdir:
                if vdir is None:
                    return []
                ids = versionstore.version_ids(vdir)
                return [versionstore.describe(vdir, vid) for vid in reversed(ids)]

        return await self.run_blocking(listed)

    async def open_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, *, read_up_to: int = 0
    ) -> tuple[FileVersion, LocalFile | None]:
        self._versions_supported()
        vid = versionstore.check_id(version_id)

        def found() -> tuple[FileVersion, LocalFile | None]:
            self._existing_vfolder(vfid)
            with self._held(vfid, relpath, False) as vdir:
                if vdir is None:
                    raise VersionNotFound(f"{relpath} has no version {vid}")
                version = versionstore.describe(vdir, vid)
                with opened(os.open(".", os.O_PATH | os.O_CLOEXEC, dir_fd=vdir)) as at:
                    return version, posix_tree.local_file_at(at, RelPath((vid,)), read_up_to)

        return await self.run_blocking(found)

    async def read_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, options: ReadOptions
    ) -> AsyncIterator[bytes]:
        _, local = await self.open_version(vfid, relpath, version_id)
        assert local is not None
        async for chunk in posix_tree.read_local(local, relpath, options, self.run_blocking):
            yield chunk

    async def restore_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, keep: KeepVersions
    ) -> FileMeta:
        self._versions_supported()
        vid = versionstore.check_id(version_id)

        def restore() -> None:
            with self._root(vfid) as root, errors_as(relpath):
                parent, name = self._write_target(root, relpath, True)
                with opened(parent):
                    staged = self._open_staged(parent)
                    try:
                        self._restore_into(vfid, relpath, vid, keep, staged, (parent, name))
                    finally:
                        fs.leave_staged(staged)

        await self.run_blocking(restore)
        self.quota_model.invalidate(vfid)
        return await self.get_file_meta(vfid, relpath)

    def _restore_into(
        self,
        vfid: VFolderID,
        rel: RelPath,
        vid: str,
        keep: KeepVersions,
        staged: tuple[int, int, str],
        at: tuple[int, str],
    ) -> None:
        area, fd, sname = staged
        with self._held(vfid, rel, False) as vdir:
            if vdir is None:
                raise VersionNotFound(f"{rel} has no version {vid}")
            try:
                src = beneath.open_regular(vdir, vid)
            except FileNotFoundError:
                raise VersionNotFound(f"{rel} has no version {vid}") from None
            with opened(src):
                fstree.clone_or_copy(src, fd)
                st = os.fstat(src)
                os.fchmod(fd, stat_mod.S_IMODE(st.st_mode))
                filemeta.copy_xattr(src, fd)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            kept = None
            if self._keeps(keep):
                kept = versionstore.keep(vdir, at[0], at[1], keep, "restore")
            try:
                fs.publish_staged(area, sname, fd, at[0], at[1], True)
            except BaseException:
                if kept is not None:
                    versionstore.remove(vdir, kept)
                raise

    async def delete_version(self, vfid: VFolderID, relpath: RelPath, version_id: str) -> None:
        self._versions_supported()
        vid = versionstore.check_id(version_id)

        def delete() -> None:
            self._existing_vfolder(vfid)
            with self._held(vfid, relpath, False) as vdir:
                if vdir is None:
                    raise VersionNotFound(f"{relpath} has no version {vid}")
                try:
                    beneath.lstat_at(vdir, vid)
                except FileNotFoundError:
                    raise VersionNotFound(f"{relpath} has no version {vid}") from None
                versionstore.remove(vdir, vid)

        await self.run_blocking(delete)
        self.quota_model.invalidate(vfid)

    def _side_areas(self, vfid: VFolderID) -> list[Path]:
        """What the vfolder keeps beside itself (versions; snapshots add theirs)."""
        return [self.versions_area(vfid)]


__all__ = ["VERSIONS_DIR", "PosixVersions"]
