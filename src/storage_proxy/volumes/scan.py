"""Tree scans for usage (file count, bytes) that keep the event loop free and use every core.

A pure-Python walk pays ~1 µs of interpreter time per ``lstat``; threads do not help (the GIL),
so a large scan is split into subtrees and fanned out to a small pool of worker processes.
The parent walks breadth-first until it has enough subtrees, then the workers finish them.
"""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import os
import stat as stat_mod
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..core.types import VFolderUsage
from . import fstree
from .beneath import opened

#: How many subtrees to hand each worker, so uneven subtrees still balance.
_SUBTREES_PER_WORKER = 16


#: A directory to scan: its path and the (device, inode) it had when it was listed.  A tenant may
#: swap any directory of its tree for a symlink at any time; a directory whose path no longer
#: leads to the inode that was listed is skipped, so a scan never counts anything outside.
Subtree = tuple[str, int, int]

_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class _Partial:
    file_count: int
    used_bytes: int
    pending_dirs: list[Subtree]
    dir_count: int = 0
    dir_bytes: int = 0


#: A directory whose path is longer than this is not handed on by path (a worker could not open
#: it: PATH_MAX is 4096): it is counted on the spot, on descriptors, whatever its depth.
_PATH_ROOM = 2048
#: Errors that mean a directory vanished, is unreadable or is no longer one (a link swapped in).
_SKIPPED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EPERM)


def _open_listed(subtree: Subtree) -> int | None:
    path, dev, ino = subtree
    try:
        fd = os.open(path, _LIST)
    except OSError as e:
        if e.errno in _SKIPPED:
            return None  # vanished, unreadable, or now a link
        raise  # ENAMETOOLONG and the like: a bug to see, never data to leave uncounted
    st = os.fstat(fd)
    if ino and (st.st_dev, st.st_ino) != (dev, ino):
        os.close(fd)
        return None
    return fd


class _Count:
    __slots__ = ("count", "size", "dirs", "dir_size")

    def __init__(self) -> None:
        self.count = self.size = self.dirs = self.dir_size = 0

    def add(self, st: os.stat_result) -> None:
        if stat_mod.S_ISDIR(st.st_mode):
            self.dirs += 1
            self.dir_size += st.st_size
        else:  # everything a tenant can create counts, whatever its name
            self.count += 1
            self.size += st.st_size

    def below(self, dir_fd: int) -> None:
        """Everything below a held directory, on descriptors (:func:`fstree.descend`)."""
        for _, _, st in fstree.descend(dir_fd, unreadable_ok=True):
            self.add(st)

    def below_entry(self, dir_fd: int, name: str, st: os.stat_result) -> None:
        sub = fstree.open_subdir(dir_fd, name, unreadable_ok=True)
        if sub is None:
            return
        with opened(sub):
            here = os.fstat(sub)
            if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino):
                self.below(sub)


def _list_one(fd: int, path: str, found: _Count, pending: list[Subtree]) -> None:
    """The entries of one directory; its subdirectories pending (by path), or counted here."""
    with os.scandir(fd) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except (FileNotFoundError, PermissionError):
                continue
            found.add(st)
            if stat_mod.S_ISDIR(st.st_mode):
                sub = f"{path}/{entry.name}"
                if len(os.fsencode(sub)) <= _PATH_ROOM:
                    pending.append((sub, st.st_dev, st.st_ino))
                else:
                    found.below_entry(fd, entry.name, st)


def scan_level(subtrees: Sequence[Subtree], descend: bool) -> _Partial:
    """Count non-directory entries under ``subtrees`` (and, apart, the directories below
    them); with ``descend=False`` stop one level down and return the directories found there
    (but those whose path is too long to hand on, counted here).  Any depth is counted: the
    walk goes on descriptors, never by a path longer than :data:`_PATH_ROOM`."""
    found = _Count()
    pending: list[Subtree] = []
    for subtree in subtrees:
        fd = _open_listed(subtree)
        if fd is None:
            continue
        try:
            if descend:
                found.below(fd)
            else:
                _list_one(fd, subtree[0], found, pending)
        except OSError as e:
            if e.errno not in _SKIPPED:
                raise  # vanished or unreadable while scanning: count what we can
        finally:
            os.close(fd)
    return _Partial(found.count, found.size, pending, found.dirs, found.dir_size)


def _usage(part: _Partial) -> VFolderUsage:
    return VFolderUsage(part.file_count, part.used_bytes, part.dir_count, part.dir_bytes)


def _add(a: VFolderUsage, b: VFolderUsage) -> VFolderUsage:
    return VFolderUsage(
        a.file_count + b.file_count,
        a.used_bytes + b.used_bytes,
        a.dir_count + b.dir_count,
        a.dir_bytes + b.dir_bytes,
    )


def scan_subtrees(subtrees: Sequence[Subtree]) -> VFolderUsage:
    """Worker entry point (module level so it pickles by reference)."""
    return _usage(scan_level(subtrees, descend=True))


def scan_tree(root: str, fanout: int = 0) -> tuple[VFolderUsage, list[Subtree]]:
    """Walk ``root`` breadth-first until ``fanout`` subtrees are pending (0: walk it all)."""
    top: Subtree = (root, 0, 0)
    if fanout <= 0:
        return _usage(scan_level([top], descend=True)), []
    usage, frontier = VFolderUsage(0, 0), [top]
    while frontier and len(frontier) < fanout:
        part = scan_level(frontier, descend=False)
        usage = _add(usage, _usage(part))
        frontier = part.pending_dirs
    return usage, frontier


class TreeScanner:
    """Computes ``VFolderUsage`` for a directory tree off the event loop.

    ``workers=0`` scans in one thread (tests, tiny deployments); otherwise a process pool of that
    many workers is started on first use and shut down by :meth:`close`.
    """

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self._pool: Executor | None = None

    def _get_pool(self) -> Executor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self._pool

    async def start(self) -> None:
        """Warm the worker processes so the first scan does not pay for starting them."""
        if self.workers > 0:
            pool = self._get_pool()
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(pool, scan_subtrees, []) for _ in range(self.workers))
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def scan(self, root: Path) -> VFolderUsage:
        if self.workers <= 0:
            usage, _ = await asyncio.to_thread(scan_tree, str(root))
            return usage
        fanout = self.workers * _SUBTREES_PER_WORKER
        usage, frontier = await asyncio.to_thread(scan_tree, str(root), fanout)
        if frontier:
            loop = asyncio.get_running_loop()
            pool = self._get_pool()
            chunks = [frontier[i::fanout] for i in range(min(fanout, len(frontier)))]
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, scan_subtrees, chunk) for chunk in chunks)
            )
            for part in results:
                usage = _add(usage, part)
        return usage
