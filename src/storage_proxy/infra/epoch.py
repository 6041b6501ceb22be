"""A node-wide change counter: eight bytes in a file, mapped into every process that opens it.

Worker processes keep copies of what every request needs and cannot ask each other whether a
copy is still good.  A change made by any of them bumps the counter, and a copy is good only
while the counter still reads what it read before the copy was made; the hot path reads one
integer from shared memory.  Used by the embedded store (vfolder records and ACLs kept per
process, the counter next to the database) and by local volumes (vfolder roots held open between
reads, the counter at the volume's top).

The file is a regular file the daemon made (a symlink or anything else there is refused, never
followed), its eight bytes are written when it is made (so a full disk refuses it then, instead
of faulting a mapped page later), and where others may shrink it under us (a volume, with
``mapped=False``) it is read with ``pread``: a short read counts as a change, never a SIGBUS.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat

_SIZE = 8
_OPEN = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK


class Epoch:
    """The counter in the file at ``path`` (``mapped``: read from a shared mapping, else with
    ``pread``), or in this process alone (``path`` None: an in-memory database only this
    process sees).  OSError when the file cannot serve as one."""

    def __init__(self, path: str | None, *, mapped: bool = True) -> None:
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._local = 0
        if path is None:
            return
        fd = _open_counter(path)
        try:
            if mapped:
                self._map = mmap.mmap(fd, _SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def read(self) -> int:
        if self._map is not None:
            return int.from_bytes(self._map[:_SIZE], "little")
        if self._fd >= 0:
            return _read(self._fd)
        return self._local

    def bump(self) -> None:
        """One more change (after it was committed). Serialized across processes by a lock on
        the file, so no two writers ever publish the same value."""
        if self._fd < 0:
            self._local += 1
            return
        _bump(self._fd)

    @staticmethod
    def bump_file(path: str) -> None:
        """:meth:`bump` through a descriptor of its own (whatever the caller's holds meanwhile)."""
        fd = _open_counter(path)
        try:
            _bump(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_counter(path: str) -> int:
    fd = os.open(path, _OPEN, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < _SIZE:  # a fresh counter: zeros, on disk (never shrunk)
                os.pwrite(fd, bytes(_SIZE), 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(fd: int) -> int:
    data = os.pread(fd, _SIZE, 0)
    return int.from_bytes(data, "little") if len(data) == _SIZE else -1  # shrunk: a change


def _bump(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        os.pwrite(fd, (max(_read(fd), 0) + 1).to_bytes(_SIZE, "little"), 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
