"""The POSIX volume base: everything a directory-tree backend shares.

Path layout, race-free path resolution, scans, atomic writes and OS-error translation live here
once; a backend for a POSIX filesystem (vfs, NFS, CephFS, XFS, NetApp) subclasses it and swaps
only what differs — usually the quota model and the capabilities.

Every user path is resolved on a held descriptor of its vfolder root (:mod:`.beneath`) and the
operation runs on what was opened: a tenant who swaps a directory for a symlink between two
requests — or in the middle of one — can never make the daemon read, write, list, move or delete
anything outside the vfolder.  Bytes being written are staged where no user path reaches them
(the volume's ``.uploads``) unless the backend's storage counts usage itself and a rename may not
leave a quota realm (``stage_beside_target``), in which case they are staged beside the target.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as stat_mod
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, TypeVar

from ..core.errors import (
    FileExists,
    InvalidPath,
    IsADirectory,
    QuotaScopeNotFound,
    StorageProxyError,
    UnsupportedOperation,
    VFolderExists,
    VFolderNotFound,
)
from ..core.files import KeepVersions, WholeFile
from ..core.paths import RelPath
from ..core.types import (
    Capability,
    DirEntry,
    FileMeta,
    FSUsage,
    QuotaScopeID,
    VFolderID,
    VFolderUsage,
)
from . import beneath, blockstats, filemeta, fsremove, fstree, posix_tree, posix_whole
from . import posix_fs as fs
from .abc import (
    DEFAULT_VFOLDER_MODE,
    SCANDIR_DEFAULT,
    AbstractVolume,
    StagedFile,
    WriteOptions,
    WriteReservation,
)
from .beneath import errors_as, opened
from .blockstats import PerfMetric
from .heldroots import HeldRoots, roots_changed
from .posix_fs import STAGING_MARK, STAGING_REAP_AGE, UPLOADS_DIR
from .posix_reads import PosixReads
from .posix_snapshots import PosixSnapshots
from .posix_upkeep import TRASH_DIR, PosixUpkeep
from .quota import ProxyQuotaModel
from .staging import FileSink, LocalStagedFile, LocalStaging, LocalStagingUploads

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

#: What every local tree can do by copies beside the vfolder (``posix_snapshots``,
#: ``posix_versions``); backends that snapshot natively declare their own.
POSIX_KEEPING = (Capability.SNAPSHOT, Capability.SNAPSHOT_QUOTA, Capability.FILE_VERSIONS)
#: Kept for plugins written against the earlier name.
translate_os_errors = errors_as
staging_name = fs.staging_name
__all__ = [
    "STAGING_MARK", "STAGING_REAP_AGE", "TRASH_DIR", "UPLOADS_DIR", "BasePosixVolume",
    "staging_name", "translate_os_errors",
]  # fmt: skip


class BasePosixVolume(PosixSnapshots, PosixReads, PosixUpkeep, LocalStagingUploads, AbstractVolume):
    """A volume that is a directory tree on a locally mounted filesystem."""

    capabilities = frozenset(
        {Capability.VFOLDER, Capability.QUOTA, Capability.LOCAL_PATH, *POSIX_KEEPING}
    )
    #: Keep file metadata (checksums, tags) in an xattr on the file; False: always the sidecar.
    use_xattrs: ClassVar[bool] = True
    #: Names the storage keeps in every directory without listing them (CephFS ``.snap``):
    #: no path below a vfolder may pass through one, not even by a symlink.
    hidden_names: ClassVar[frozenset[str]] = frozenset()
    #: The file system is on a local block device whose counters are the volume's I/O
    #: (``blockstats``); network and cluster file systems (NFS, CephFS, appliances) are not.
    block_device_metrics: ClassVar[bool] = False

    quota_model: ProxyQuotaModel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quota_model = self.adopt(self.create_quota_model())
        self.staging = LocalStaging(self.mount_path / UPLOADS_DIR, self._run)
        #: bytes copied so far by the clones running in this process, by destination
        self._cloned: dict[VFolderID, int] = {}

    def create_quota_model(self) -> Any:
        """The proxy-enforced model by default; backends with native quotas override this."""
        return ProxyQuotaModel(
            self.name,
            self.quota_scope_path,
            self.vfolder_path,
            self.deps.books,
            self.deps.scanner.scan,
            usage_ttl=float(self.options.get("quota-usage-ttl", 30.0)),
        )

    def adopt(self, model: Any) -> Any:
        """A quota model for this volume: a ledger-backed one holds as this process."""
        if isinstance(model, ProxyQuotaModel):
            model.holder = self.deps.holder
        return model

    @property
    def stage_beside_target(self) -> bool:
        """Stage writes beside their target instead of in ``.uploads``: for storage that counts
        usage itself and refuses renames out of a quota realm (CephFS, XFS projects, qtrees)."""
        return False

    async def performance_metric(self) -> PerfMetric:
        if not self.block_device_metrics:
            return await super().performance_metric()
        try:
            read = await self._run(blockstats.device_counters, self.mount_path)
            return await blockstats.sample(read)
        except (blockstats.NoBlockDevice, OSError, ValueError) as e:
            raise UnsupportedOperation(f"no I/O counters for volume {self.name!r}: {e}") from None

    async def init(self) -> None:
        def check() -> None:
            self.mount_path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.mount_path, os.R_OK | os.W_OK | os.X_OK):
                raise PermissionError(f"volume path {self.mount_path} is not readable and writable")
            (self.mount_path / UPLOADS_DIR).mkdir(mode=0o700, exist_ok=True)
            if self.inline_reads and not self.hidden_names:
                held = self._held_roots = HeldRoots.open(self.mount_path)
                self._roots_counter = None if held is None else held.path

        await self._run(check)
        reaped = await self.reap_staging(time.time() - STAGING_REAP_AGE)
        if reaped:
            log.info(
                "volume %s: removed %d staged write(s) left by a crash", self.name, len(reaped)
            )

    async def shutdown(self) -> None:
        held, self._held_roots = self._held_roots, None
        if held is not None:
            held.close()
        await super().shutdown()

    def _root_changed(self) -> None:
        """What a vfolder's path names changed (blocking): no process reads a held old root."""
        if self._roots_counter is not None:
            roots_changed(self._roots_counter)

    # -- layout ------------------------------------------------------------------------------
    def quota_scope_path(self, qsid: QuotaScopeID) -> Path:
        return self.mount_path / qsid.pathname

    def vfolder_path(self, vfid: VFolderID) -> Path:
        return self.mount_path.joinpath(*vfid.relative_parts)

    def trash_dir(self, vfid: VFolderID) -> Path:
        """Where a deleted vfolder is renamed before removal; must be on its filesystem (and
        quota realm, where renames cannot leave one)."""
        return self.mount_path / TRASH_DIR

    def _existing_vfolder(self, vfid: VFolderID) -> Path:
        path = self.vfolder_path(vfid)
        if not path.is_dir():
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")
        return path

    def _root(self, vfid: VFolderID, path: str | None = None) -> beneath.HeldRoot:
        """A descriptor of the vfolder root, for the duration of one operation (blocking).
        ``path``: its directory, already known (its absence then shows as the open failing)."""
        where = path if path is not None else self._existing_vfolder(vfid)
        return beneath.HeldRoot(
            where,
            self.hidden_names,
            lambda: VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}"),
        )

    def _reservation(self, vfid: VFolderID) -> WriteReservation:
        return self.quota_model.reservation(vfid)

    # -- vfolders ----------------------------------------------------------------------------
    async def create_vfolder(self, vfid: VFolderID, *, mode: int = DEFAULT_VFOLDER_MODE) -> None:
        def create() -> None:
            if not self.quota_scope_path(vfid.quota_scope_id).is_dir():
                raise QuotaScopeNotFound(f"quota scope {vfid.quota_scope_id} does not exist")
            path = self.vfolder_path(vfid)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir(mode=mode)
            except FileExistsError:
                raise VFolderExists(f"vfolder {vfid} already exists") from None
            os.chmod(path, mode)  # mkdir's mode is filtered by the umask
            self._root_changed()

        await self._run(create)

    async def delete_vfolder(self, vfid: VFolderID) -> None:
        def delete() -> None:
            path = self._existing_vfolder(vfid)
            trash = self.trash_dir(vfid)
            trash.mkdir(exist_ok=True)
            # Out of sight atomically; the trash job removes it once the grace period is over.
            doomed = (
                trash / f"{vfid.quota_scope_id.pathname}-{vfid.folder_id.hex}-{uuid.uuid4().hex}"
            )
            os.rename(path, doomed)  # purged by the trash job after [jobs] trash-grace
            self._root_changed()
            fs.trash_beside(self._side_areas(vfid), trash, doomed.name)
            for parent in (path.parent, path.parent.parent):
                try:
                    parent.rmdir()  # the two hash levels, once empty
                except OSError:
                    break

        with errors_as(vfid):
            await self._run(delete)
        self.quota_model.invalidate(vfid)

    def clone_staging_parent(self, dst: VFolderID) -> Path:
        """Where a clone is assembled before it is renamed into place."""
        if self.stage_beside_target:
            return self.vfolder_path(dst).parent
        return self.mount_path / UPLOADS_DIR

    async def clone_progress(self, dst: VFolderID) -> int | None:
        """Counted by the copy itself: never a walk of the stagings (another tenant's tree)."""
        return self._cloned.get(dst, 0)

    async def clone_vfolder(self, src: VFolderID, dst: VFolderID) -> None:
        usage = await self.get_usage(src)
        dst_path = self.vfolder_path(dst)

        def copy() -> None:
            if dst_path.exists():
                raise VFolderExists(f"vfolder {dst} already exists")
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            parent = self.clone_staging_parent(dst)
            with opened(beneath.open_root(parent)) as parent_fd:
                d, name = fs.create_locked(parent_fd, directory=True)
            staging = parent / name
            try:
                with opened(d):  # locked until renamed into place: the reaper leaves it
                    with self._root(src) as src_root:
                        with opened(os.open(".", fstree.O_LIST_DIR, dir_fd=src_root)) as s:
                            fstree.copy_tree(s, d, partial(self._count_cloned, dst))
                            os.chmod(d, stat_mod.S_IMODE(os.fstat(s).st_mode))
                    try:
                        os.rename(staging, dst_path)
                    except OSError as e:
                        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                            raise VFolderExists(f"vfolder {dst} already exists") from None
                        raise
                    self._root_changed()
            except BaseException:
                with contextlib.suppress(OSError):
                    fsremove.remove_path(staging)
                raise

        async with self._reservation(dst) as res:
            await res.reserve(usage.used_bytes)
            self._cloned[dst] = 0
            try:
                with errors_as(dst):
                    await self._run(copy)
            finally:
                self._cloned.pop(dst, None)
            res.used = usage.used_bytes

    def _count_cloned(self, dst: VFolderID, n: int) -> None:
        self._cloned[dst] = self._cloned.get(dst, 0) + n

    async def vfolder_exists(self, vfid: VFolderID) -> bool:
        return await self._run(self.vfolder_path(vfid).is_dir)

    async def get_vfolder_mount(self, vfid: VFolderID, subpath: RelPath = RelPath(())) -> Path:
        def mount() -> Path:
            with self._root(vfid) as root, errors_as(subpath):
                with opened(beneath.open_dir(root, subpath)) as fd:
                    base, real = beneath.fd_path(root), beneath.fd_path(fd)
            if real != base and not real.startswith(base.rstrip("/") + "/"):
                raise InvalidPath(f"path escapes its vfolder: {subpath}")
            return Path(real)

        return await self._run(mount)

    async def check_path(self, vfid: VFolderID, relpath: RelPath) -> None:
        def check() -> None:
            rel = relpath
            with self._root(vfid) as root, errors_as(relpath):
                while True:
                    try:
                        os.close(beneath.open_beneath(root, rel.parts, os.O_PATH))
                        return
                    except FileNotFoundError:
                        if not rel.parts:
                            raise
                        rel = rel.parent

        await self._run(check)

    async def get_usage(self, vfid: VFolderID) -> VFolderUsage:
        path = await self._run(self._existing_vfolder, vfid)
        return await self.deps.scanner.scan(path)

    async def get_fs_usage(self) -> FSUsage:
        st = await self._run(os.statvfs, self.mount_path)
        return FSUsage(
            capacity_bytes=st.f_frsize * st.f_blocks,
            used_bytes=st.f_frsize * (st.f_blocks - st.f_bfree),
        )

    # -- files -------------------------------------------------------------------------------
    def _scandir_sync(
        self, vfid: VFolderID, rel: RelPath, recursive: bool, limit: int | None
    ) -> list[DirEntry]:
        if limit == SCANDIR_DEFAULT:
            limit = self.deps.scandir_limit or None
        with self._root(vfid) as root:
            return posix_tree.scandir_at(root, rel, recursive, limit)

    async def scandir(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        recursive: bool = False,
        limit: int | None = SCANDIR_DEFAULT,
    ) -> AsyncIterator[DirEntry]:
        for entry in await self._run(self._scandir_sync, vfid, relpath, recursive, limit):
            yield entry

    async def stat(self, vfid: VFolderID, relpath: RelPath) -> DirEntry:
        def do_stat() -> DirEntry:
            with self._root(vfid) as root:
                return posix_tree.stat_at(root, relpath)

        return await self._retry_missing(vfid, relpath, lambda: self._run(do_stat))

    async def mkdir(
        self, vfid: VFolderID, relpath: RelPath, *, parents: bool = True, exist_ok: bool = False
    ) -> None:
        def do_mkdir() -> None:
            if not relpath.parts:
                raise FileExists("the vfolder root already exists")
            with self._root(vfid) as root, errors_as(relpath):
                if parents:
                    parent = beneath.make_dirs(root, relpath.parent)
                else:
                    parent = beneath.open_parent(root, relpath)
                with opened(parent):
                    try:
                        os.mkdir(relpath.name, 0o755, dir_fd=parent)
                    except FileExistsError:
                        # exist_ok only for a real directory: a link is never followed to answer
                        st = beneath.lstat_at(parent, relpath.name)
                        if not (exist_ok and stat_mod.S_ISDIR(st.st_mode)):
                            raise

        await self._run(do_mkdir)

    async def move_file(
        self, vfid: VFolderID, src: RelPath, dst: RelPath, *, keep: KeepVersions | None = None
    ) -> None:
        def do_move() -> None:
            if not src.parts or not dst.parts:
                raise InvalidPath("the vfolder root cannot be moved or replaced")
            with self._root(vfid) as root:
                with errors_as(src), opened(beneath.open_parent(root, src)) as sp:
                    beneath.lstat_at(sp, src.name)
                    with errors_as(dst), opened(beneath.open_parent(root, dst)) as dp:
                        if src.name == dst.name and os.path.samestat(os.fstat(sp), os.fstat(dp)):
                            raise InvalidPath(f"cannot move {src} onto itself")
                        # the kernel refuses a directory moved into itself (EINVAL)
                        move = partial(os.rename, src.name, dst.name, src_dir_fd=sp, dst_dir_fd=dp)
                        self._replace(vfid, dst, keep, "move", (dp, dst.name), move)

        await self._run(do_move)

    async def delete_files(
        self,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        recursive: bool = False,
        keep: KeepVersions | None = None,
    ) -> None:
        def do_delete() -> None:
            with self._root(vfid) as root:
                targets: list[tuple[RelPath, int, os.stat_result]] = []
                try:
                    for rel in relpaths:  # every path is checked before anything is deleted
                        if not rel.parts:
                            raise InvalidPath("the vfolder root cannot be deleted as a file")
                        with errors_as(rel):
                            parent = beneath.open_parent(root, rel)
                            targets.append((rel, parent, os.lstat(rel.name, dir_fd=parent)))
                    for rel, parent, st in targets:
                        with errors_as(rel):
                            self._remove(vfid, rel, parent, st, recursive, keep)
                finally:
                    for _, parent, _ in targets:
                        os.close(parent)

        await self._run(do_delete)
        self.quota_model.invalidate(vfid)

    # -- data --------------------------------------------------------------------------------
    def _write_target(self, root: int, rel: RelPath, overwrite: bool) -> tuple[int, str]:
        """``(parent descriptor, name)`` a write lands at; parents are created.

        A final component that is a symlink is written through when it leads to a file inside
        the vfolder; one that leaves it (or dangles, or loops) is refused.
        """
        if not rel.parts:
            raise IsADirectory("cannot write over the vfolder root")
        parent = beneath.make_dirs(root, rel.parent)
        try:
            try:
                st = beneath.lstat_at(parent, rel.name)
            except FileNotFoundError:
                return parent, rel.name
            if stat_mod.S_ISLNK(st.st_mode):
                return fs.link_target_entry(root, parent, rel)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectory(f"is a directory: {rel}")
            if not overwrite:
                raise FileExists(f"already exists: {rel}")
            return parent, rel.name
        except BaseException:
            os.close(parent)
            raise

    def _open_staged(self, parent: int) -> tuple[int, int, str]:
        """``(staging dir descriptor, file descriptor, name)`` of a new staged file: in
        ``.uploads``, or beside the target's directory ``parent`` (``stage_beside_target``).
        :func:`fs.leave_staged` closes it (and removes it unless it was published)."""
        if self.stage_beside_target:
            area = os.dup(parent)
        else:
            area = beneath.open_root(self.mount_path / UPLOADS_DIR)
        try:
            fd, name = fs.create_locked(area)
        except BaseException:
            os.close(area)
            raise
        return area, fd, name

    async def write(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        stream: AsyncIterator[bytes],
        options: WriteOptions = WriteOptions(),
    ) -> FileMeta:
        if (options.size_hint or 0) <= posix_whole.WHOLE_MAX:  # small: maybe in one step
            meta, stream = await posix_whole.write_if_whole(self, vfid, relpath, stream, options)
            if meta is not None:
                return meta

        def prepare() -> tuple[int, str]:
            with self._root(vfid) as root, errors_as(relpath):
                return self._write_target(root, relpath, options.overwrite)

        parent, name = await self._run(prepare)
        digests_of = fs.hashers() if options.checksums else []
        with opened(parent), errors_as(relpath):
            async with self._reservation(vfid) as res:
                if options.size_hint:
                    await res.reserve(options.size_hint)
                staged = await self._run(self._open_staged, parent)
                _, fd, _ = staged
                try:
                    async with FileSink(fd, digests_of, self._run) as sink:
                        async for chunk in stream:
                            await res.consume(len(chunk))
                            await sink.write(chunk)
                    publish = posix_whole.stamp_and_publish
                    args = (self, vfid, relpath, staged, parent, name, digests_of, options)
                    record = await self._run(publish, *args)
                finally:
                    await self._run(fs.leave_staged, staged)
        if record.pop("_sidecar", False) and (digests_of or options.content_type or options.tags):
            await self.deps.books.put_file_meta(self.name, str(vfid), str(relpath), record)
        return await self.get_file_meta(vfid, relpath)

    async def write_whole(
        self, vfid: VFolderID, files: Sequence[WholeFile]
    ) -> list[FileMeta | StorageProxyError]:
        return await posix_whole.write_group(self, vfid, files)

    # -- file metadata -----------------------------------------------------------------------
    def _stamp(self, fd: int, *, mode: int = 0o644, **fields: Any) -> dict[str, Any]:
        """Give a staged file its mode and record (before it is published)."""
        return fs.stamp(fd, self.use_xattrs, mode=mode, **fields)

    def _read_record(self, fd: int, rel: RelPath) -> tuple[os.stat_result, Any, bool]:
        """Blocking: the file's stat, its xattr record, and whether the sidecar holds it instead."""
        return fs.read_record(fd, rel, self.use_xattrs)

    def _with_file(self, vfid: VFolderID, rel: RelPath, op: Callable[[int], R]) -> R:
        with self._root(vfid) as root, errors_as(rel):
            with opened(beneath.open_for_read(root, rel)) as fd:
                return op(fd)

    async def get_file_meta(self, vfid: VFolderID, relpath: RelPath) -> FileMeta:
        async def read() -> FileMeta:
            st, record, sidecar = await self._run(
                self._with_file, vfid, relpath, lambda fd: self._read_record(fd, relpath)
            )
            if sidecar:
                record = await self.deps.books.get_file_meta(self.name, str(vfid), str(relpath))
            return filemeta.to_file_meta(st, record)

        return await self._retry_missing(vfid, relpath, read)

    async def update_file_meta(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> FileMeta:
        def update_xattr(fd: int) -> tuple[os.stat_result, Any, bool]:
            st, record, sidecar = self._read_record(fd, relpath)
            if sidecar:
                return st, None, True
            record = fs.merged_record(record, st, content_type, tags)
            filemeta.write_xattr(fd, record)
            return st, record, False

        async def update() -> FileMeta:
            st, record, sidecar = await self._run(self._with_file, vfid, relpath, update_xattr)
            if sidecar:
                key = (self.name, str(vfid), str(relpath))
                stored = await self.deps.books.get_file_meta(*key)
                record = fs.merged_record(stored, st, content_type, tags)
                await self.deps.books.put_file_meta(*key, record)
            return filemeta.to_file_meta(st, record)

        return await self._retry_missing(vfid, relpath, update)

    # -- resumable uploads: staged under <volume>/.uploads ------------------------------------
    async def upload_publish(
        self,
        held: StagedFile,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        overwrite: bool = True,
        checksums: bool = False,
        content_type: str | None = None,
        keep: KeepVersions | None = None,
    ) -> None:
        assert isinstance(held, LocalStagedFile)

        def publish() -> dict[str, Any]:
            fd = held.fd
            sha256 = md5 = None
            if checksums:
                sha256, md5 = fstree.hash_fds(held.content_fds(), "sha256", "md5")
            record = self._stamp(
                fd, sha256=sha256, md5=md5, content_type=content_type, tags={}, mode=0o644
            )
            with self._root(vfid) as root, errors_as(relpath):
                parent, name = self._write_target(root, relpath, overwrite)
                with opened(parent):
                    publish = partial(
                        fs.publish_staged, held.dir_fd, held.path.name, fd, parent, name, overwrite
                    )
                    kept = keep if overwrite else None
                    self._replace(vfid, relpath, kept, "overwrite", (parent, name), publish)
            return record

        record = await self._run(publish)
        if record.pop("_sidecar", False):
            await self.deps.books.put_file_meta(self.name, str(vfid), str(relpath), record)
