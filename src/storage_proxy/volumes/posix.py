"""The POSIX volume base: everything a directory-tree backend shares.

Path layout, path safety, scans, atomic writes and OS-error translation live here once; a backend
for a POSIX filesystem (vfs, NFS, CephFS, XFS) subclasses it and swaps only what differs —
usually the quota model and the capabilities.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import stat as stat_mod
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, TypeVar

import aiofiles

from ..errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    InsufficientStorage,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    PermissionDenied,
    QuotaExceeded,
    QuotaScopeNotFound,
    StorageProxyError,
    VFolderExists,
    VFolderNotFound,
)
from ..paths import RelPath, resolve_inside
from ..types import (
    Capability,
    DirEntry,
    DirEntryType,
    FileMeta,
    FSUsage,
    QuotaScopeID,
    Stat,
    VFolderID,
    VFolderUsage,
)
from . import filemeta
from .abc import (
    DEFAULT_VFOLDER_MODE,
    SCANDIR_DEFAULT,
    AbstractVolume,
    LocalFile,
    ReadOptions,
    WriteOptions,
    WriteReservation,
)
from .quota import ProxyQuotaModel
from .scan import STAGING_MARK
from .staging import FileSink, LocalStaging, LocalStagingUploads

P = ParamSpec("P")
R = TypeVar("R")

TRASH_DIR = ".trash"
UPLOADS_DIR = ".uploads"
_READ_BUFFER = 4 << 20


@contextmanager
def translate_os_errors(what: object = "") -> Iterator[None]:
    """Turn OSError into the domain error that names what went wrong (never a 500)."""
    try:
        yield
    except StorageProxyError:
        raise
    except FileNotFoundError:
        raise FileNotFound(f"no such file or directory: {what}") from None
    except FileExistsError:
        raise FileExists(f"already exists: {what}") from None
    except NotADirectoryError:
        raise NotADirectory(f"not a directory: {what}") from None
    except IsADirectoryError:
        raise IsADirectory(f"is a directory: {what}") from None
    except PermissionError:
        raise PermissionDenied(f"the storage refused access to {what}") from None
    except OSError as e:
        if e.errno == errno.ENOTEMPTY:
            raise DirectoryNotEmpty(f"directory not empty: {what}") from None
        if e.errno == errno.EDQUOT:
            raise QuotaExceeded(f"the storage quota is exceeded while writing {what}") from None
        if e.errno == errno.ENOSPC:
            raise InsufficientStorage(f"no space left while writing {what}") from None
        if e.errno in (errno.EINVAL, errno.ENAMETOOLONG, errno.ELOOP):
            raise InvalidPath(f"{e.strerror}: {what}") from None
        raise


def _entry_type(mode: int) -> DirEntryType:
    if stat_mod.S_ISLNK(mode):
        return DirEntryType.SYMLINK
    if stat_mod.S_ISDIR(mode):
        return DirEntryType.DIRECTORY
    return DirEntryType.FILE


def _dir_entry(path: str, rel: str, st: os.stat_result) -> DirEntry:
    kind = _entry_type(st.st_mode)
    target = ""
    if kind is DirEntryType.SYMLINK:
        try:
            target = os.readlink(path)
        except OSError:
            target = ""
    return DirEntry(
        name=os.path.basename(rel) or ".",
        path=rel,
        type=kind,
        stat=Stat(
            size=st.st_size,
            mode=stat_mod.S_IMODE(st.st_mode),
            created=datetime.fromtimestamp(st.st_ctime, UTC),
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        ),
        symlink_target=target,
    )


class BasePosixVolume(LocalStagingUploads, AbstractVolume):
    """A volume that is a directory tree on a locally mounted filesystem."""

    capabilities = frozenset({Capability.VFOLDER, Capability.QUOTA, Capability.LOCAL_PATH})
    #: Keep file metadata (checksums, tags) in an xattr on the file; False: always the sidecar.
    use_xattrs: ClassVar[bool] = True

    quota_model: ProxyQuotaModel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quota_model = self.create_quota_model()
        self.staging = LocalStaging(self.mount_path / UPLOADS_DIR)

    def create_quota_model(self) -> Any:
        """The proxy-enforced model by default; backends with native quotas override this."""
        return ProxyQuotaModel(
            self.name,
            self.quota_scope_path,
            self.vfolder_path,
            self.deps.metadata,
            self.deps.scanner.scan,
            usage_ttl=float(self.options.get("quota-usage-ttl", 30.0)),
        )

    async def init(self) -> None:
        def check() -> None:
            self.mount_path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.mount_path, os.R_OK | os.W_OK | os.X_OK):
                raise PermissionError(f"volume path {self.mount_path} is not readable and writable")

        await asyncio.to_thread(check)

    # -- layout ------------------------------------------------------------------------------
    def quota_scope_path(self, qsid: QuotaScopeID) -> Path:
        return self.mount_path / qsid.pathname

    def vfolder_path(self, vfid: VFolderID) -> Path:
        return self.mount_path.joinpath(*vfid.relative_parts)

    def trash_dir(self, vfid: VFolderID) -> Path:
        """Where a deleted vfolder is renamed before removal; must be on its filesystem (and
        quota realm, where renames cannot leave one)."""
        return self.mount_path / TRASH_DIR

    async def _retry_missing(
        self, vfid: VFolderID, rel: RelPath, op: Callable[[], Awaitable[R]]
    ) -> R:
        """Run a lookup that expects ``rel`` to exist; filesystems with attribute caching (NFS)
        retry a "not found" here. The local default believes the first answer."""
        return await op()

    async def _run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(func, *args, **kwargs)

    def _existing_vfolder(self, vfid: VFolderID) -> Path:
        path = self.vfolder_path(vfid)
        if not path.is_dir():
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")
        return path

    def _resolve(self, vfid: VFolderID, rel: RelPath, *, follow_final: bool = True) -> Path:
        return resolve_inside(self._existing_vfolder(vfid), rel, follow_final=follow_final)

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

        await self._run(create)
        await self.deps.metadata.register_vfolder(self.name, str(vfid), str(vfid.quota_scope_id))

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
            for parent in (path.parent, path.parent.parent):
                try:
                    parent.rmdir()  # the two hash levels, once empty
                except OSError:
                    break

        with translate_os_errors(vfid):
            await self._run(delete)
        self.quota_model.invalidate(vfid)
        await self.deps.metadata.unregister_vfolder(self.name, str(vfid))

    async def clone_vfolder(self, src: VFolderID, dst: VFolderID) -> None:
        def prepare() -> Path:
            src_path = self._existing_vfolder(src)
            if self.vfolder_path(dst).exists():
                raise VFolderExists(f"vfolder {dst} already exists")
            self.quota_scope_path(dst.quota_scope_id).mkdir(parents=True, exist_ok=True)
            return src_path

        src_path = await self._run(prepare)
        usage = await self.deps.scanner.scan(src_path)
        dst_path = self.vfolder_path(dst)

        def copy() -> None:
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            staging = dst_path.parent / _staging_name()
            try:
                shutil.copytree(src_path, staging, symlinks=True)
                try:
                    os.rename(staging, dst_path)
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise VFolderExists(f"vfolder {dst} already exists") from None
                    raise
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

        async with self._reservation(dst) as res:
            await res.reserve(usage.used_bytes)
            with translate_os_errors(dst):
                await self._run(copy)
            res.used = usage.used_bytes
        await self.deps.metadata.register_vfolder(self.name, str(dst), str(dst.quota_scope_id))

    async def vfolder_exists(self, vfid: VFolderID) -> bool:
        return await self._run(self.vfolder_path(vfid).is_dir)

    async def get_vfolder_mount(self, vfid: VFolderID, subpath: RelPath = RelPath(())) -> Path:
        return await self._run(self._resolve, vfid, subpath)

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
        root = self._resolve(vfid, rel)
        if limit == SCANDIR_DEFAULT:
            limit = self.deps.scandir_limit or None
        out: list[DirEntry] = []
        stack = [(str(root), str(rel) if rel.parts else "")]
        with translate_os_errors(rel):
            while stack:
                path, prefix = stack.pop()
                with os.scandir(path) as it:
                    for entry in it:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        relname = f"{prefix}/{entry.name}" if prefix else entry.name
                        out.append(_dir_entry(entry.path, relname, st))
                        if limit is not None and len(out) >= limit:
                            return out
                        if recursive and stat_mod.S_ISDIR(st.st_mode):
                            stack.append((entry.path, relname))
        return out

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
            path = self._resolve(vfid, relpath, follow_final=False)
            with translate_os_errors(relpath):
                return _dir_entry(str(path), str(relpath), os.lstat(path))

        return await self._retry_missing(vfid, relpath, lambda: self._run(do_stat))

    async def mkdir(
        self, vfid: VFolderID, relpath: RelPath, *, parents: bool = True, exist_ok: bool = False
    ) -> None:
        def do_mkdir() -> None:
            if not relpath.parts:
                raise FileExists("the vfolder root already exists")
            path = self._resolve(vfid, relpath, follow_final=False)
            with translate_os_errors(relpath):
                try:
                    path.mkdir(parents=parents)
                except FileExistsError:
                    # exist_ok only for a real directory: a link is never followed to answer
                    if not (exist_ok and stat_mod.S_ISDIR(os.lstat(path).st_mode)):
                        raise

        await self._run(do_mkdir)

    async def move_file(self, vfid: VFolderID, src: RelPath, dst: RelPath) -> None:
        def do_move() -> None:
            if not src.parts or not dst.parts:
                raise InvalidPath("the vfolder root cannot be moved or replaced")
            src_path = self._resolve(vfid, src, follow_final=False)
            dst_path = self._resolve(vfid, dst, follow_final=False)
            with translate_os_errors(src):
                os.lstat(src_path)
            if dst_path == src_path or str(dst_path).startswith(str(src_path) + "/"):
                raise InvalidPath(f"cannot move {src} into itself")
            with translate_os_errors(dst):
                os.rename(src_path, dst_path)

        await self._run(do_move)

    async def delete_files(
        self, vfid: VFolderID, relpaths: Sequence[RelPath], *, recursive: bool = False
    ) -> None:
        def do_delete() -> None:
            targets = []
            for rel in relpaths:
                if not rel.parts:
                    raise InvalidPath("the vfolder root cannot be deleted as a file")
                path = self._resolve(vfid, rel, follow_final=False)
                with translate_os_errors(rel):
                    targets.append((rel, path, os.lstat(path)))
            for rel, path, st in targets:
                with translate_os_errors(rel):
                    if stat_mod.S_ISDIR(st.st_mode):
                        if recursive:
                            shutil.rmtree(path)
                        else:
                            os.rmdir(path)
                    else:
                        os.unlink(path)

        await self._run(do_delete)
        self.quota_model.invalidate(vfid)

    # -- data --------------------------------------------------------------------------------
    async def local_file(
        self, vfid: VFolderID, relpath: RelPath, *, read_up_to: int = 0
    ) -> LocalFile | None:
        def find() -> LocalFile:
            path = self._resolve(vfid, relpath)
            with translate_os_errors(relpath):
                st = os.stat(path)
                body = None
                if read_up_to and stat_mod.S_ISREG(st.st_mode) and st.st_size <= read_up_to:
                    with open(path, "rb") as f:
                        body = f.read(read_up_to + 1)
                    if len(body) != st.st_size:  # changed under us: let sendfile handle it
                        body = None
            return LocalFile(path, st, body)

        return await self._retry_missing(vfid, relpath, lambda: self._run(find))

    async def local_path(self, vfid: VFolderID, relpath: RelPath) -> Path | None:
        def find() -> Path:
            path = self._resolve(vfid, relpath)
            with translate_os_errors(relpath):
                os.stat(path)  # exists (file or directory)
            return path

        return await self._retry_missing(vfid, relpath, lambda: self._run(find))

    async def read(
        self, vfid: VFolderID, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]:
        path = await self.local_path(vfid, relpath)
        assert path is not None
        if await self._run(path.is_dir):
            raise IsADirectory(f"is a directory: {relpath}")
        remaining = options.length
        with translate_os_errors(relpath):
            async with aiofiles.open(path, "rb") as f:
                if options.offset:
                    await f.seek(options.offset)
                while remaining is None or remaining > 0:
                    want = (
                        options.chunk_size
                        if remaining is None
                        else min(remaining, options.chunk_size)
                    )
                    chunk = await f.read(want)
                    if not chunk:
                        break
                    if remaining is not None:
                        remaining -= len(chunk)
                    yield chunk

    async def write(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        stream: AsyncIterator[bytes],
        options: WriteOptions = WriteOptions(),
    ) -> FileMeta:
        def prepare() -> Path:
            if not relpath.parts:
                raise IsADirectory("cannot write over the vfolder root")
            target = self._resolve(vfid, relpath)
            with translate_os_errors(relpath):
                if target.is_dir():
                    raise IsADirectory(f"is a directory: {relpath}")
                if not options.overwrite and target.exists():
                    raise FileExists(f"already exists: {relpath}")
                target.parent.mkdir(parents=True, exist_ok=True)
            return target

        target = await self._run(prepare)
        staging = target.parent / _staging_name()
        hashers = [hashlib.sha256(), hashlib.md5()] if options.checksums else []
        async with self._reservation(vfid) as res:
            if options.size_hint:
                await res.reserve(options.size_hint)
            try:
                with translate_os_errors(relpath):
                    fd = await self._run(
                        os.open, staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                    )
                    sink = FileSink(fd, hashers)
                    try:
                        async for chunk in stream:
                            await res.consume(len(chunk))
                            await sink.write(chunk)
                        await sink.flush()
                    finally:
                        await self._run(os.close, fd)
                    record = None
                    if hashers or options.content_type or options.tags:
                        record = await self._run(
                            self._stamp,
                            staging,
                            sha256=hashers[0].hexdigest() if hashers else None,
                            md5=hashers[1].hexdigest() if hashers else None,
                            content_type=options.content_type,
                            tags=dict(options.tags or {}),
                        )
                    await self._run(_publish, staging, target, options.mode)
            except BaseException:
                await self._run(_unlink_quietly, staging)
                raise
        if record is not None and record.pop("_sidecar", False):
            await self.deps.metadata.put_file_meta(self.name, str(vfid), str(relpath), record)
        return await self.get_file_meta(vfid, relpath)

    # -- file metadata -----------------------------------------------------------------------
    def _stamp(self, path: Path, **fields: Any) -> dict[str, Any]:
        """Record checksums and attributes on the file (before it is published)."""
        record = filemeta.make_record(os.stat(path), **fields)
        if not (self.use_xattrs and filemeta.write_xattr(str(path), record)):
            record["_sidecar"] = True  # no xattrs here: the caller keeps it in the store
        return record

    def _read_record(self, path: Path, rel: RelPath) -> tuple[os.stat_result, Any, bool]:
        """Blocking: the file's stat, its xattr record, and whether the sidecar holds it instead."""
        with translate_os_errors(rel):
            st = os.stat(path)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectory(f"is a directory: {rel}")
            if not self.use_xattrs:
                return st, None, True
            try:
                return st, filemeta.read_xattr(str(path)), False
            except OSError as e:
                if filemeta.xattrs_unsupported(e):
                    return st, None, True
                raise

    async def get_file_meta(self, vfid: VFolderID, relpath: RelPath) -> FileMeta:
        async def read() -> FileMeta:
            path = await self._run(self._resolve, vfid, relpath)
            st, record, sidecar = await self._run(self._read_record, path, relpath)
            if sidecar:
                record = await self.deps.metadata.get_file_meta(self.name, str(vfid), str(relpath))
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
        def update_xattr() -> tuple[os.stat_result, Any, bool]:
            path = self._resolve(vfid, relpath)
            st, record, sidecar = self._read_record(path, relpath)
            if sidecar:
                return st, None, True
            record = _merged(record, st, content_type, tags)
            with translate_os_errors(relpath):
                filemeta.write_xattr(str(path), record)
            return st, record, False

        async def update() -> FileMeta:
            st, record, sidecar = await self._run(update_xattr)
            if sidecar:
                key = (self.name, str(vfid), str(relpath))
                stored = await self.deps.metadata.get_file_meta(*key)
                record = _merged(stored, st, content_type, tags)
                await self.deps.metadata.put_file_meta(*key, record)
            return filemeta.to_file_meta(st, record)

        return await self._retry_missing(vfid, relpath, update)

    # -- resumable uploads: staged under <volume>/.uploads ------------------------------------
    async def upload_publish(
        self,
        session_id: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        overwrite: bool = True,
        checksums: bool = False,
        content_type: str | None = None,
    ) -> None:
        staged = self._staged(session_id)
        record = None
        if checksums or content_type:
            sha256, md5 = await self._run(_hash_file, staged) if checksums else (None, None)
            record = await self._run(
                self._stamp, staged, sha256=sha256, md5=md5, content_type=content_type, tags={}
            )

        def publish() -> None:
            if not relpath.parts:
                raise IsADirectory("cannot write over the vfolder root")
            target = self._resolve(vfid, relpath)
            with translate_os_errors(relpath):
                if target.is_dir():
                    raise IsADirectory(f"is a directory: {relpath}")
                if not overwrite and target.exists():
                    raise FileExists(f"already exists: {relpath}")
                target.parent.mkdir(parents=True, exist_ok=True)
                _publish(staged, target, 0o644)

        await self._run(publish)
        if record is not None and record.pop("_sidecar", False):
            await self.deps.metadata.put_file_meta(self.name, str(vfid), str(relpath), record)


def _merged(
    record: dict[str, Any] | None,
    st: os.stat_result,
    content_type: str | None,
    tags: Mapping[str, str] | None,
) -> dict[str, Any]:
    """A record with new attributes; checksums kept only if the file is unchanged since."""
    old = filemeta.to_file_meta(st, record)
    return filemeta.make_record(
        st,
        sha256=old.sha256,
        md5=old.md5,
        content_type=content_type if content_type is not None else old.content_type,
        tags=dict(tags) if tags is not None else old.tags,
    )


def _hash_file(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_BUFFER):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _publish(staging: Path, target: Path, mode: int) -> None:
    """Give the staged file its mode and move it into place: it appears whole or not at all.

    Where a rename may not cross a quota boundary (CephFS realms, XFS projects: EXDEV), the file
    is copied beside the target first (charged to the target's quota; EDQUOT stops it and the
    copy is removed) and renamed from there.
    """
    os.chmod(staging, mode)
    try:
        os.replace(staging, target)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    local = target.parent / _staging_name()
    try:
        shutil.copy2(staging, local)  # keeps the mtime and the checksum xattr
        os.replace(local, target)
    except BaseException:
        _unlink_quietly(local)
        raise
    _unlink_quietly(staging)


def _staging_name() -> str:
    """A short name beside the target (same filesystem), whatever the target name's length."""
    return f"{STAGING_MARK}{uuid.uuid4().hex}"


def _unlink_quietly(path: Path) -> None:
    """Best-effort cleanup: never let it replace the error that caused it."""
    try:
        path.unlink()
    except OSError:
        pass
