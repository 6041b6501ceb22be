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
from typing import Any

from ..core.errors import TreeTooDeep
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


def open_subdir(dir_fd: int, name: str, *, unreadable_ok: bool = False) -> int | None:
    """A listable descriptor of a real subdirectory; None if it is gone or no longer one (or,
    with ``unreadable_ok``, if it cannot be read)."""
    try:
        return os.open(name, O_LIST_DIR | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _GONE or (unreadable_ok and e.errno in (errno.EACCES, errno.EPERM)):
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


#: Levels of a walk whose descriptors stay open; below them only the current directory is held
#: and the walk climbs back through ``..`` (checked to be the directory it came from).
HELD_LEVELS = 16
#: Deepest level a copy or an archive goes (``[storage-proxy] max-tree-depth``).
_max_depth = 1024


def set_max_depth(depth: int) -> None:
    """Applied once at start-up from the configuration (the tests set it too)."""
    global _max_depth
    _max_depth = depth


def max_depth() -> int:
    return _max_depth


def _lister(sort: bool) -> Callable[[int], Iterator[tuple[str, os.stat_result]]]:
    def listing(fd: int) -> Iterator[tuple[str, os.stat_result]]:
        if sort:
            return iter(sorted(list_dir(fd), key=lambda item: item[0]))
        return _scan_live(fd)

    return listing


def _scan_live(fd: int) -> Iterator[tuple[str, os.stat_result]]:
    """The entries of a directory as they are read (a huge one is never held whole)."""
    with os.scandir(fd) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                if e.errno not in _GONE:
                    raise
                continue
            yield entry.name, st


class _Level:
    __slots__ = ("fd", "dev", "ino", "name", "items")

    def __init__(
        self, fd: int, st: os.stat_result, name: str, items: Iterator[tuple[str, os.stat_result]]
    ) -> None:
        self.fd, self.dev, self.ino, self.name, self.items = fd, st.st_dev, st.st_ino, name, items


class Descent:
    """The directories from a walk's root down to where it is: every level's pending entries,
    a descriptor for the top :data:`HELD_LEVELS` ones and the current one only (a 10000-level
    tree costs ~20 descriptors).  A level whose descriptor is let go keeps what is left of its
    listing in memory; climbing back opens ``..`` and checks it is the directory that was left,
    else reopens the levels by name from the deepest one held (a tenant moving directories
    mid-walk loses the part that moved, never leads the walk outside)."""

    def __init__(
        self, root_fd: int, listing: Callable[[int], Iterator[Any]], unreadable_ok: bool = False
    ) -> None:
        self.listing = listing
        self.unreadable_ok = unreadable_ok
        #: set by the consumer of an item to keep the walk out of that directory
        self.prune = False
        self.levels = [_Level(root_fd, os.fstat(root_fd), "", listing(root_fd))]

    @property
    def fd(self) -> int:
        return self.levels[-1].fd

    @property
    def depth(self) -> int:
        """Depth of the entries of the current directory (1: the root's own)."""
        return len(self.levels)

    def names(self) -> list[str]:
        return [level.name for level in self.levels[1:]]

    def push(self, name: str, st: os.stat_result) -> bool:
        """Enter subdirectory ``name`` of the current one if it is still the one listed."""
        sub = open_subdir(self.fd, name, unreadable_ok=self.unreadable_ok)
        if sub is None:
            return False
        try:
            here = os.fstat(sub)
            if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino):
                os.close(sub)
                return False
            items = self.listing(sub)
        except BaseException:
            os.close(sub)
            raise
        top = self.levels[-1]
        if len(self.levels) > HELD_LEVELS:
            top.items = iter(list(top.items))  # its scandir (and descriptor) let go
            os.close(top.fd)
            top.fd = -1
        self.levels.append(_Level(sub, here, name, items))
        return True

    def pop(self) -> None:
        """Leave the current directory (never the root: the walk's caller holds that)."""
        level = self.levels.pop()
        try:
            if self.levels[-1].fd < 0:
                self._climb(level.fd)
        finally:
            _close_items(level.items)
            os.close(level.fd)

    def _climb(self, child_fd: int) -> None:
        parent = self.levels[-1]
        fd = os.open("..", O_LIST_DIR, dir_fd=child_fd)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (parent.dev, parent.ino):
            parent.fd = fd
            return
        os.close(fd)
        self._reopen()

    def _reopen(self) -> None:
        """Open the levels let go again by name, from the deepest held one, each checked."""
        held = max(i for i, level in enumerate(self.levels) if level.fd >= 0)
        for i in range(held + 1, len(self.levels)):
            level, above = self.levels[i], self.levels[i - 1]
            sub = open_subdir(above.fd, level.name)
            here = os.fstat(sub) if sub is not None else None
            if sub is None or here is None or (here.st_dev, here.st_ino) != (level.dev, level.ino):
                if sub is not None:
                    os.close(sub)
                self._cut(i)
                return
            level.fd = sub
            if i - 1 > held:
                os.close(above.fd)
                above.fd = -1

    def _cut(self, i: int) -> None:
        """Give up levels ``i`` and below: they moved while the walk was away."""
        for level in self.levels[i:]:
            _close_items(level.items)
            if level.fd >= 0:
                os.close(level.fd)
        del self.levels[i:]

    def close(self) -> None:
        while len(self.levels) > 1:
            level = self.levels.pop()
            _close_items(level.items)
            if level.fd >= 0:
                os.close(level.fd)
        if self.levels:
            _close_items(self.levels.pop().items)


def _close_items(items: Iterator[Any]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def descend(
    dir_fd: int,
    *,
    recursive: bool = True,
    sort: bool = False,
    limit_depth: int | None = None,
    unreadable_ok: bool = False,
) -> Iterator[tuple[Descent, str, os.stat_result]]:
    """``(descent, name, lstat)`` for every entry below a listable directory descriptor (which
    stays open and is not closed): depth first, a directory's contents right after it.  The
    current directory is ``descent.fd``, valid only until the next item.  An entry deeper than
    ``limit_depth`` raises :class:`TreeTooDeep` (nothing is yielded below that depth); a
    subdirectory that cannot be read is skipped with ``unreadable_ok``, else raises."""
    walk_ = Descent(dir_fd, _lister(sort), unreadable_ok)
    try:
        while walk_.levels:
            item = next(walk_.levels[-1].items, None)
            if item is None:
                if len(walk_.levels) == 1:
                    break
                walk_.pop()
                continue
            if limit_depth is not None and walk_.depth > limit_depth:
                raise TreeTooDeep(f"the tree is nested deeper than {limit_depth} levels")
            name, st = item
            walk_.prune = False
            yield walk_, name, st
            if recursive and not walk_.prune and stat_mod.S_ISDIR(st.st_mode):
                walk_.push(name, st)
    finally:
        walk_.close()


def walk(
    dir_fd: int,
    prefix: str = "",
    *,
    recursive: bool = True,
    sort: bool = False,
    limit_depth: int | None = None,
) -> Iterator[tuple[int, Entry]]:
    """``(parent_fd, entry)`` for the entries below a listable directory descriptor (which
    stays open); depth first, a directory's contents right after it.  ``parent_fd`` is valid
    only until the next item: use it at once (open, unlink).  Descriptors held: bounded
    (see :class:`Descent`), whatever the depth."""
    here: _Level | None = None
    base = prefix
    for at, name, st in descend(dir_fd, recursive=recursive, sort=sort, limit_depth=limit_depth):
        if at.levels[-1] is not here:  # entered or left a directory: its path, once
            here, base = at.levels[-1], "/".join(([prefix] if prefix else []) + at.names())
        rel = f"{base}/{name}" if base else name
        target = ""
        if stat_mod.S_ISLNK(st.st_mode):
            try:
                target = os.fsdecode(os.readlink(name, dir_fd=at.fd))
            except OSError:
                target = ""
        yield at.fd, Entry(rel, name, st, target)


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
    limit_depth: int | None = -1,
) -> tuple[int, int]:
    """Copy the contents of one directory into another (both held); returns (files, bytes).

    Regular files (reflinked where the filesystem can), directories and symlinks (as links:
    never followed) are copied; anything else (FIFOs, sockets, devices) is skipped, and so are
    entries whose name ``skip`` refuses, with all below them.  Modes and mtimes are kept (a
    directory's once its contents are in).  Iterative, on a bounded number of descriptors: the
    source's walk (:class:`Descent`) and the destination's current directory only.  A tree
    deeper than ``limit_depth`` (default: ``max-tree-depth``) raises :class:`TreeTooDeep`; the
    caller removes what was copied.
    """
    files = nbytes = 0
    out = _DestChain(dst_fd)
    made: tuple[str, os.stat_result] | None = None
    depth_cap = _max_depth if limit_depth == -1 else limit_depth
    try:
        for at, name, st in descend(src_fd, limit_depth=depth_cap):
            out.follow(at, made)
            made = None
            if skip is not None and skip(name):
                at.prune = True
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=out.fd)
                made = (name, st)
            elif stat_mod.S_ISLNK(st.st_mode):
                _copy_link(at.fd, name, out.fd)
            elif stat_mod.S_ISREG(st.st_mode):
                n = _copy_file(at.fd, name, out.fd, st)
                if n is not None:
                    files, nbytes = files + 1, nbytes + n
                    if on_copied is not None:
                        on_copied(n)
        out.follow(None, None)
    finally:
        out.close()
    return files, nbytes


def _copy_link(src_dir: int, name: str, dst_dir: int) -> None:
    try:
        target = os.readlink(name, dir_fd=src_dir)
    except OSError as e:
        if e.errno in _GONE:
            return  # no longer a link when it was read (a live tree)
        raise
    os.symlink(target, name, dir_fd=dst_dir)


def _finish_new(dir_fd: int, name: str, st: os.stat_result) -> None:
    """Give a copied directory its source's mode and mtime (once nothing more goes in)."""
    fd = open_subdir(dir_fd, name)
    if fd is not None:
        with opened(fd):
            _set_times_mode(fd, st)


def _set_times_mode(fd: int, st: os.stat_result) -> None:
    os.chmod(fd, stat_mod.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _DestChain:
    """The directory a copy writes into, following the source walk down and up: only the
    current one is held; climbing opens ``..``, which must be the directory that was left."""

    def __init__(self, root_fd: int) -> None:
        self.root = self.fd = root_fd
        # per level entered: the source level it mirrors, its source lstat, its parent's (dev, ino)
        self.chain: list[tuple[_Level, os.stat_result, tuple[int, int]]] = []

    def follow(self, at: Descent | None, made: tuple[str, os.stat_result] | None) -> None:
        """Be in the copy of the directory ``at`` is in (None: the root, the copy is over);
        ``made``: the directory created for the previous item (entered now, or finished)."""
        levels = at.levels if at is not None else []
        entering = made is not None and len(levels) == len(self.chain) + 2
        if made is not None and not entering:
            _finish_new(self.fd, *made)
        while self.chain and (
            len(self.chain) >= len(levels) or self.chain[-1][0] is not levels[len(self.chain)]
        ):
            self._climb()
        if entering:
            assert made is not None
            level = levels[-1]
            if made[0] != level.name:
                raise OSError(errno.ESTALE, "copy lost its place", level.name)
            parent = os.fstat(self.fd)
            fd = os.open(level.name, O_LIST_DIR | os.O_NOFOLLOW, dir_fd=self.fd)
            self._let_go()
            self.fd = fd
            self.chain.append((level, made[1], (parent.st_dev, parent.st_ino)))
        elif levels and len(self.chain) + 1 != len(levels):
            raise OSError(errno.ESTALE, "copy lost its place")

    def _climb(self) -> None:
        _, src_st, (dev, ino) = self.chain.pop()
        _set_times_mode(self.fd, src_st)
        if self.chain:
            up = os.open("..", O_LIST_DIR, dir_fd=self.fd)
            st = os.fstat(up)
            if (st.st_dev, st.st_ino) != (dev, ino):
                os.close(up)
                raise OSError(errno.ESTALE, "a directory of the copy was moved")
        else:
            up = self.root
        self._let_go()
        self.fd = up

    def _let_go(self) -> None:
        if self.fd != self.root:
            os.close(self.fd)

    def close(self) -> None:
        self._let_go()
        self.fd = self.root


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
