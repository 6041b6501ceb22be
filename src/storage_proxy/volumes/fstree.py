"""Whole trees on held descriptors: listing, walking, copying and hashing without following links.

Every directory is opened from its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``, every
file with ``O_NOFOLLOW | O_NONBLOCK`` and kept only if it is regular: a directory swapped for a
symlink while a walk runs is skipped, never entered, and a FIFO cannot stall the walk.
Blocking: call these from a worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat as stat_mod
import struct
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .beneath import O_PATH_DIR, lstat_at, open_regular, opened

O_LIST_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_COPY_CHUNK = 64 << 20
_PARALLEL_HASH = 32 << 20  # from this size on, each digest in a thread of its own
_HASH_CHUNK = 4 << 20
#: errnos meaning "the entry changed or vanished under us": skip it, the tree is live
_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EINVAL, errno.ENXIO)
#: <linux/fs.h> FICLONE: the destination shares the source's blocks (a reflink)
FICLONE = 0x40049409
#: <linux/fs.h> FICLONERANGE: the same for a range (struct file_clone_range)
FICLONERANGE = 0x4020940D
_NO_CLONE = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry met by a walk: where it is (relative to the walk's root) and its lstat."""

    path: str  # "a/b/name" relative to the walk's root
    name: str
    stat: os.stat_result
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.stat.st_mode)

    @property
    def is_file(self) -> bool:
        return stat_mod.S_ISREG(self.stat.st_mode)


def open_subdir(dir_fd: int, name: str) -> int | None:
    """A listable descriptor of a real subdirectory; None if it is gone or no longer one."""
    try:
        return os.open(name, O_LIST_DIR | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _GONE:
            return None
        raise


def list_dir(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of the entries of a listable directory descriptor."""
    out = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except OSError as e:
                if e.errno not in _GONE:
                    raise
    return out


def list_dir_names(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of a directory given by an ``O_PATH`` (or any) descriptor."""
    with opened(os.open(".", O_LIST_DIR, dir_fd=dir_fd)) as fd:
        return list_dir(fd)


def walk(
    dir_fd: int, prefix: str = "", *, recursive: bool = True, sort: bool = False
) -> Iterator[tuple[int, Entry]]:
    """``(parent_fd, entry)`` for the entries below a listable directory descriptor (which
    stays open); depth first, a directory's contents right after it.  ``parent_fd`` is valid
    only until the next item: use it at once (open, unlink).  Descriptors held: one per level.
    """

    def listing(fd: int) -> Iterator[tuple[str, os.stat_result]]:
        items = list_dir(fd)
        if sort:
            items.sort(key=lambda item: item[0])
        return iter(items)

    stack: list[tuple[int, str, Iterator[tuple[str, os.stat_result]], bool]] = [
        (dir_fd, prefix, listing(dir_fd), False)
    ]
    try:
        while stack:
            fd, base, items, owned = stack[-1]
            item = next(items, None)
            if item is None:
                stack.pop()
                if owned:
                    os.close(fd)
                continue
            name, st = item
            rel = f"{base}/{name}" if base else name
            target = ""
            if stat_mod.S_ISLNK(st.st_mode):
                try:
                    target = os.fsdecode(os.readlink(name, dir_fd=fd))
                except OSError:
                    target = ""
            yield fd, Entry(rel, name, st, target)
            if recursive and stat_mod.S_ISDIR(st.st_mode):
                sub = open_subdir(fd, name)
                if sub is not None:
                    try:
                        stack.append((sub, rel, listing(sub), True))
                    except BaseException:
                        os.close(sub)
                        raise
    finally:
        for fd, _, _, owned in stack:
            if owned:
                os.close(fd)


def walk_files(dir_fd: int) -> Iterator[tuple[int, Entry]]:
    """``(parent_fd, entry)`` of the regular files below a listable directory descriptor."""
    for parent, entry in walk(dir_fd):
        if entry.is_file:
            yield parent, entry


def unlink_if_same(dir_fd: int, name: str, expected: os.stat_result) -> bool:
    """Unlink ``name`` only if it is still the file that was looked at (same inode)."""
    try:
        st = lstat_at(dir_fd, name)
    except FileNotFoundError:
        return False
    if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
        return False
    os.unlink(name, dir_fd=dir_fd)
    return True


def copy_fd(src: int, dst: int, size: int | None = None) -> int:
    """Copy a whole regular file between descriptors in the kernel where it can."""
    copied, refused = _kernel_copy(src, dst, 0, size, 0)
    if refused:
        copied += _copy_by_reads(src, dst, copied, size, 0)
    return copied


def _try_clone(dst: int, request: int, arg: int | bytes) -> bool:
    try:
        fcntl.ioctl(dst, request, arg)
    except OSError as e:
        if e.errno in _NO_CLONE:
            return False
        raise
    return True


def clone_fd(src: int, dst: int) -> bool:
    """Make ``dst`` share ``src``'s blocks in one call (XFS with reflink, btrfs); False where
    the filesystem cannot (the caller copies)."""
    return _try_clone(dst, FICLONE, src)


def clone_range(src: int, dst: int, length: int, dst_offset: int) -> bool:
    """Make ``dst`` from ``dst_offset`` share the first ``length`` bytes of ``src``'s blocks;
    False where the filesystem cannot (no reflink, or offsets not block-aligned)."""
    request = struct.pack("=qQQQ", src, 0, length, dst_offset)  # struct file_clone_range
    return _try_clone(dst, FICLONERANGE, request)


def clone_or_copy(src: int, dst: int) -> int:
    """A whole file's bytes into an empty ``dst``: a reflink where it can be, else a copy (which
    the kernel may still do without moving the bytes)."""
    if clone_fd(src, dst):
        return os.fstat(dst).st_size
    return copy_fd(src, dst)


@dataclass(slots=True)
class JoinReport:
    """How ``join_files`` moved the bytes: shared blocks (reflink), an in-kernel copy, or a
    copy through this process."""

    size: int = 0
    cloned: int = 0
    kernel_copied: int = 0
    copied: int = 0


def join_files(dst: int, sources: Sequence[int]) -> JoinReport:
    """Append each source file (whole) to ``dst``, in order, without copying where possible:
    a block-aligned one's blocks are shared (``clone_range``), otherwise the kernel copies
    (``copy_file_range``, which may still share blocks, or copy server-side on NFS), and only
    if that is refused too, this process does."""
    report = JoinReport(size=os.fstat(dst).st_size)
    for src in sources:
        length = os.fstat(src).st_size
        if length and clone_range(src, dst, length, report.size):
            report.cloned += length
        elif length:
            done, refused = _kernel_copy(src, dst, 0, length, report.size)
            report.kernel_copied += done
            if refused:
                report.copied += _copy_by_reads(src, dst, done, length, report.size)
        report.size += length
    return report


def _kernel_copy(src: int, dst: int, start: int, end: int | None, shift: int) -> tuple[int, bool]:
    """``copy_file_range`` of ``src`` from ``start`` to ``end`` (None: its end) to the same
    offsets plus ``shift`` in ``dst``: where it stopped, and whether the kernel refused."""
    pos = start
    while end is None or pos < end:
        want = _COPY_CHUNK if end is None else min(_COPY_CHUNK, end - pos)
        try:
            n = os.copy_file_range(src, dst, want, pos, pos + shift)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            return pos, True
        if n == 0:  # the end of src, or a filesystem that copies nothing: reads will tell
            return pos, end is not None
        pos += n
    return pos, False


def _copy_by_reads(src: int, dst: int, start: int, end: int | None, shift: int) -> int:
    """The same through this process; a source that ends before ``end`` is an error."""
    copied = 0
    while end is None or start + copied < end:
        want = _COPY_CHUNK if end is None else min(_COPY_CHUNK, end - start - copied)
        chunk = os.pread(src, want, start + copied)
        if not chunk:
            if end is not None:
                raise OSError(errno.EIO, "the source shrank while it was being copied")
            break
        view = memoryview(chunk)
        while view:
            n = os.pwrite(dst, view, start + copied + shift)
            view = view[n:]
            copied += n
    return copied


def copy_tree(
    src_fd: int,
    dst_fd: int,
    on_copied: Callable[[int], None] | None = None,
    skip: Callable[[str], bool] | None = None,
) -> tuple[int, int]:
    """Copy the contents of one directory into another (both held); returns (files, bytes).

    Regular files (reflinked where the filesystem can), directories and symlinks (as links:
    never followed) are copied; anything else (FIFOs, sockets, devices) is skipped, and so are
    entries whose name ``skip`` refuses, with all below them.  Modes and mtimes are kept (a
    directory's once its contents are in).  Iterative: any depth a tenant builds is copied, one
    descriptor per level.
    """
    files = nbytes = 0
    # (depth, dst descriptor, source lstat) of the directories being filled
    dirs: list[tuple[int, int, os.stat_result | None]] = [(0, dst_fd, None)]
    skipped: list[str] = []
    try:
        for parent, entry in walk(src_fd):
            if skip is not None and (
                skip(entry.name) or any(entry.path.startswith(s) for s in skipped)
            ):
                skipped.append(entry.path + "/")
                continue
            depth = entry.path.count("/") + 1
            while dirs[-1][0] >= depth:
                _finish_dir(*dirs.pop()[1:])
            out = dirs[-1][1]
            st = entry.stat
            if entry.is_dir:
                os.mkdir(entry.name, 0o700, dir_fd=out)
                fd = os.open(entry.name, O_LIST_DIR | os.O_NOFOLLOW, dir_fd=out)
                dirs.append((depth, fd, st))
            elif stat_mod.S_ISLNK(st.st_mode):
                if entry.link_target:  # "": no longer a link when it was read (a live tree)
                    os.symlink(entry.link_target, entry.name, dir_fd=out)
            elif entry.is_file:
                n = _copy_file(parent, entry.name, out, st)
                if n is not None:
                    files, nbytes = files + 1, nbytes + n
                    if on_copied is not None:
                        on_copied(n)
    finally:
        while len(dirs) > 1:
            _finish_dir(*dirs.pop()[1:])
    return files, nbytes


def _copy_file(src_dir: int, name: str, dst_dir: int, st: os.stat_result) -> int | None:
    try:
        src = open_regular(src_dir, name)
    except OSError as e:
        if e.errno in _GONE:
            return None  # changed or vanished since the listing
        raise
    with opened(src):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with opened(os.open(name, flags, 0o600, dir_fd=dst_dir)) as dst:
            n = clone_or_copy(src, dst)
            os.fchmod(dst, stat_mod.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return n


def _finish_dir(fd: int, st: os.stat_result | None) -> None:
    try:
        if st is not None:
            os.chmod(fd, stat_mod.S_IMODE(st.st_mode))
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def hash_fd(fd: int, *algorithms: str) -> list[str]:
    """Hex digests of a whole file read from its descriptor (from offset 0)."""
    return hash_fds((fd,), *algorithms)


def hash_fds(fds: Sequence[int], *algorithms: str) -> list[str]:
    """Hex digests of the files behind ``fds`` one after the other (a joined upload hashed from
    its parts, whose pages are still cached where the joined file shares their blocks); several
    at once, one thread each above a size (hashlib releases the GIL: sha256 and md5 of a large
    file take the time of the slower one, not of both)."""
    if len(algorithms) < 2 or sum(os.fstat(fd).st_size for fd in fds) < _PARALLEL_HASH:
        return _hash_all(fds, algorithms)
    with ThreadPoolExecutor(len(algorithms), thread_name_prefix="hash") as pool:
        return list(pool.map(lambda a: _hash_all(fds, (a,))[0], algorithms))


def _hash_all(fds: Sequence[int], algorithms: Sequence[str]) -> list[str]:
    hashers = [hashlib.new(a) for a in algorithms]
    for fd in fds:
        offset = 0
        while chunk := os.pread(fd, _HASH_CHUNK, offset):
            offset += len(chunk)
            for h in hashers:
                h.update(chunk)
    return [h.hexdigest() for h in hashers]


def open_dir_path(dir_fd: int) -> int:
    """An ``O_PATH`` twin of a listable directory descriptor."""
    return os.open(".", O_PATH_DIR, dir_fd=dir_fd)
