"""A node-wide change counter: eight bytes in a file, mapped into every process that opens it.

Worker processes keep copies of what every request needs and cannot ask each other whether a
copy is still good.  A change made by any of them bumps the counter, and a copy is good only
while the counter still reads what it read before the copy was made; the hot path reads one
integer from shared memory.  Used by the embedded store (vfolder records and ACLs kept per
process, the counter next to the database) and by local volumes (vfolder roots held open between
reads, the counter at the volume's top).
"""

from __future__ import annotations

import fcntl
import mmap
import os

_SIZE = 8


class Epoch:
    """The counter of one database: in a mapped file, or in this process alone (``path``
    None: an in-memory database only this process sees)."""

    def __init__(self, path: str | None) -> None:
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._local = 0
        if path is None:
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if os.fstat(self._fd).st_size < _SIZE:
            os.ftruncate(self._fd, _SIZE)  # zeros: a fresh counter (never shrinks an existing one)
        self._map = mmap.mmap(self._fd, _SIZE)

    def read(self) -> int:
        if self._map is None:
            return self._local
        return int.from_bytes(self._map[:_SIZE], "little")

    def bump(self) -> None:
        """One more change (after it was committed). Serialized across processes by a lock on
        the file, so no two writers ever publish the same value."""
        if self._map is None:
            self._local += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._map[:_SIZE] = (self.read() + 1).to_bytes(_SIZE, "little")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
