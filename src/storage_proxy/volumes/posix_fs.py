"""The file-level steps of POSIX volumes, on descriptors: staging names and locks, publishing a
staged file (copying where a rename may not cross a quota boundary), removing entries, and the
records and entries the volume answers with.  Blocking: called from the volume's I/O pool."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat as stat_mod
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import FileExists, InvalidPath, IsADirectory
from ..core.files import LocalFile
from ..core.paths import RelPath
from ..core.types import DirEntry, DirEntryType, Stat
from . import beneath, filemeta, fsremove, fstree
from .beneath import opened
from .staging import is_abandoned_at

UPLOADS_DIR = ".uploads"
#: Names of staged files and trees the proxy is still writing (beside a target, or in .uploads).
STAGING_MARK = ".sp-tmp-"
#: A staged write being created (not locked yet) under this name for longer is a crash's.
STAGING_REAP_AGE = 60.0
NEW_MARK = ".sp-new-"
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def entry_type(mode: int) -> DirEntryType:
    if stat_mod.S_ISLNK(mode):
        return DirEntryType.SYMLINK
    if stat_mod.S_ISDIR(mode):
        return DirEntryType.DIRECTORY
    if stat_mod.S_ISREG(mode):
        return DirEntryType.FILE
    return DirEntryType.SPECIAL


def dir_entry(name: str, rel: str, st: os.stat_result, target: str = "") -> DirEntry:
    return DirEntry(
        name=name or ".",
        path=rel,
        type=entry_type(st.st_mode),
        stat=Stat(
            size=st.st_size,
            mode=stat_mod.S_IMODE(st.st_mode),
            created=datetime.fromtimestamp(st.st_ctime, UTC),
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        ),
        symlink_target=target,
    )


def staging_name() -> str:
    """A short name for a staged file, whatever the target name's length."""
    return f"{STAGING_MARK}{uuid.uuid4().hex}"


def hashers() -> list[Any]:
    return [hashlib.sha256(), hashlib.md5()]


def create_locked(area: int, *, directory: bool = False) -> tuple[int, str]:
    """A new staged file (or directory) in ``area``, locked before it gets its staging name:
    whatever carries that name and is not locked belongs to a writer that died."""
    temp, name = NEW_MARK + uuid.uuid4().hex, staging_name()
    if directory:
        os.mkdir(temp, 0o700, dir_fd=area)
        fd = os.open(temp, fstree.O_LIST_DIR | os.O_NOFOLLOW, dir_fd=area)
    else:
        fd = os.open(temp, WRITE_FLAGS, 0o600, dir_fd=area)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temp, name, src_dir_fd=area, dst_dir_fd=area)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            (os.rmdir if directory else os.unlink)(temp, dir_fd=area)
        raise
    return fd, name


def leave_staged(staged: tuple[int, int, str]) -> None:
    """Close a staged file opened by ``_open_staged`` (removed if it was not published)."""
    area, fd, name = staged
    os.close(fd)
    try:
        os.unlink(name, dir_fd=area)
    except FileNotFoundError:
        pass
    os.close(area)


def link_target_entry(root: int, parent: int, rel: RelPath) -> tuple[int, str]:
    """Where a write through the final symlink ``rel`` lands, if it stays inside the vfolder."""
    try:
        fd = beneath.open_beneath(root, rel.parts, os.O_PATH)
    except FileNotFoundError:
        raise InvalidPath(f"{rel} is a dangling link") from None
    with opened(fd):
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise IsADirectory(f"{rel} leads to something that is not a file")
        base, real = beneath.fd_path(root), beneath.fd_path(fd)
    if not real.startswith(base.rstrip("/") + "/"):
        raise InvalidPath(f"path escapes its vfolder: {rel}")
    target = RelPath.parse(os.path.relpath(real, base))
    new_parent = beneath.open_parent(root, target)
    try:
        if beneath.lstat_at(new_parent, target.name).st_ino != st.st_ino:
            raise InvalidPath(f"{rel} changed while it was resolved")
    except BaseException:
        os.close(new_parent)
        raise
    os.close(parent)
    return new_parent, target.name


def remove_entry(parent: int, name: str, st: os.stat_result, recursive: bool) -> None:
    """Delete one entry of a held directory; a directory's tree is removed on descriptors."""
    if not stat_mod.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
    elif recursive:
        fsremove.remove_tree(parent, name)  # on descriptors, any depth, never follows a link
    else:
        os.rmdir(name, dir_fd=parent)


def publish_staged(area: int, sname: str, fd: int, parent: int, name: str, overwrite: bool) -> None:
    """Move a staged file to ``name`` in ``parent``: it appears whole or not at all.

    Where a rename may not cross a quota boundary (CephFS realms, XFS projects: EXDEV), the file
    is copied beside the target first (charged to the target's quota; EDQUOT stops it and the
    copy is removed) and renamed from there.
    """
    if not overwrite:
        try:
            beneath.lstat_at(parent, name)
        except FileNotFoundError:
            pass
        else:
            raise FileExists(f"already exists: {name}")
    try:
        os.rename(sname, name, src_dir_fd=area, dst_dir_fd=parent)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    local = staging_name()
    try:
        with opened(os.open(local, WRITE_FLAGS, 0o600, dir_fd=parent)) as out:
            fstree.copy_fd(fd, out)
            st = os.fstat(fd)
            os.fchmod(out, stat_mod.S_IMODE(st.st_mode))
            filemeta.copy_xattr(fd, out)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(local, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        try:
            os.unlink(local, dir_fd=parent)
        except OSError:
            pass
        raise
    os.unlink(sname, dir_fd=area)


def write_json(dir_fd: int, name: str, data: dict[str, Any]) -> None:
    """A small record of the proxy's own, replaced whole (written aside, renamed into place)."""
    tmp = f"{NEW_MARK}{uuid.uuid4().hex}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with opened(os.open(tmp, flags, 0o600, dir_fd=dir_fd)) as fd:
        os.write(fd, json.dumps(data, separators=(",", ":")).encode())
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def read_json(dir_fd: int, name: str) -> dict[str, Any] | None:
    try:
        with opened(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)) as fd:
            data = json.loads(os.read(fd, 1 << 16))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def trash_beside(areas: list[Path], trash: Path, name: str) -> None:
    """Move what a deleted vfolder kept beside itself (versions, snapshot copies) into the trash
    with it (``<name>.<area>``), to be purged with it; removed at once where it cannot move."""
    for area in areas:
        try:
            os.rename(area, trash / f"{name}{area.parent.name}")
        except FileNotFoundError:
            continue
        except OSError:
            with contextlib.suppress(OSError):
                fsremove.remove_path(area)


def merged_record(
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


def reap_staging(uploads: Path, older_than: float) -> list[str]:
    """Remove what crashed writers left in ``uploads``: staged files and clone trees that no
    live writer holds (a writer holds its lock from before the staged name exists), and
    half-created ones older than ``older_than``."""
    reaped = []
    with opened(beneath.open_root(uploads)) as area:
        for name, st in fstree.list_dir_names(area):
            if name.startswith(NEW_MARK):
                if st.st_mtime >= older_than:
                    continue  # being created right now (microseconds), or a crash's
            elif not name.startswith(STAGING_MARK) or not is_abandoned_at(area, name):
                continue
            try:
                remove_entry(area, name, st, recursive=True)
            except FileNotFoundError:
                continue
            reaped.append(name)
    return reaped


def stamp(fd: int, use_xattrs: bool, *, mode: int = 0o644, **fields: Any) -> dict[str, Any]:
    """Give a staged file its mode and record (before it is published); ``_sidecar`` marks a
    record the caller must keep in the books (no xattrs here)."""
    os.fchmod(fd, mode)
    record = filemeta.make_record(os.fstat(fd), **fields)
    meaningful = fields.get("sha256") or fields.get("content_type") or fields.get("tags")
    if meaningful and not (use_xattrs and filemeta.write_xattr(fd, record)):
        record["_sidecar"] = True
    return record


def read_record(fd: int, rel: RelPath, use_xattrs: bool) -> tuple[os.stat_result, Any, bool]:
    """The file's stat, its xattr record, and whether the sidecar holds the record instead."""
    st = os.fstat(fd)
    if stat_mod.S_ISDIR(st.st_mode):
        raise IsADirectory(f"is a directory: {rel}")
    if not use_xattrs:
        return st, None, True
    try:
        return st, filemeta.read_xattr(fd), False
    except OSError as e:
        if filemeta.xattrs_unsupported(e):
            return st, None, True
        raise


def open_local(root: int, rel: RelPath, read_up_to: int, *, nowait: bool) -> LocalFile:
    """Open ``rel`` beneath the vfolder root ``root`` with its stat and, for a regular file of at
    most ``read_up_to`` bytes, its content.

    ``nowait``: the content is read only if it is in the page cache (``RWF_NOWAIT``), so this can
    run on the event loop; ``LocalFile.body`` stays None otherwise (the caller reads it in a
    thread).
    """
    fd, st = beneath.open_checked(root, rel)
    try:
        body = None
        if read_up_to and stat_mod.S_ISREG(st.st_mode) and st.st_size <= read_up_to:
            body = read_small(fd, read_up_to + 1, st.st_size, nowait)
        if body is None:  # it will be sent or read as a stream
            os.set_blocking(fd, True)
        return LocalFile(fd, st, body)
    except BaseException:
        os.close(fd)
        raise


def read_small(fd: int, want: int, size: int, nowait: bool = False) -> bytes | None:
    """The whole small file, or None if it changed size meanwhile (sendfile copes with that) or
    (``nowait``) is not all in the page cache."""
    if nowait and size:
        buf = bytearray(min(want, size + 1))  # one byte more than the size: growth shows
        try:
            n = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
        except (BlockingIOError, OSError) as e:
            if isinstance(e, BlockingIOError) or e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise
        if n != size:
            return None
        del buf[n:]
        return bytes(buf)
    body = os.pread(fd, want, 0)
    return body if len(body) == size else None


_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
