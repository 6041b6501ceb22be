"""A registry of filesystem project ids in the ``/etc/projects`` + ``/etc/projid`` formats.

The xfs backend keeps XFS project ids there; the ddn backend keeps Lustre project ids in files of
the same format on the volume itself.  Both files are shared with administrators and other
tools, so entries we do not own are kept verbatim.  Every change is a read-modify-write under
two locks -- an asyncio lock for this process and ``flock`` on a lock file that lives with the
volume (so every proxy serving the volume serializes on it, unlike a lock in ``/tmp``) -- and
each file is replaced atomically (temp file, fsync, rename), so a crash leaves the old or the new
file, never half of one.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ..core.errors import InsufficientStorage

T = TypeVar("T")


class ProjectRegistry:
    """Allocates project ids from a range and records ``id:path`` and ``name:id`` entries."""

    def __init__(
        self,
        projects_file: Path,
        projid_file: Path,
        lock_file: Path,
        id_range: tuple[int, int],
    ) -> None:
        self.projects_file = projects_file
        self.projid_file = projid_file
        self.lock_file = lock_file
        self.id_range = id_range
        self._lock = asyncio.Lock()

    async def lookup(self, name: str) -> int | None:
        return await self._locked(lambda: _parse_projid(_read_lines(self.projid_file)).get(name))

    async def register(self, name: str, path: Path) -> int:
        """The project id of ``name``, allocating and recording one if it has none yet."""
        return await self._locked(lambda: self._register(name, path))

    async def unregister(self, name: str) -> int | None:
        """Remove ``name`` from both files; its former id, or ``None`` if it was not there."""
        return await self._locked(lambda: self._unregister(name))

    # -- under the lock ----------------------------------------------------------------------
    async def _locked(self, func: Callable[[], T]) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._with_flock, func)

    def _with_flock(self, func: Callable[[], T]) -> T:
        with _flock(self.lock_file):
            return func()

    def _register(self, name: str, path: Path) -> int:
        projid = _read_lines(self.projid_file)
        projects = _read_lines(self.projects_file)
        known = _parse_projid(projid)
        if name in known:
            return known[name]
        used = set(known.values()) | set(_parse_projects(projects))
        low, high = self.id_range
        prid = next((i for i in range(low, high + 1) if i not in used), None)
        if prid is None:
            raise InsufficientStorage(f"no free project id left in [{low}, {high}]")
        _atomic_write(self.projects_file, [*projects, f"{prid}:{path}"])
        _atomic_write(self.projid_file, [*projid, f"{name}:{prid}"])
        return prid

    def _unregister(self, name: str) -> int | None:
        projid = _read_lines(self.projid_file)
        prid = _parse_projid(projid).get(name)
        if prid is None:
            return None
        projects = _read_lines(self.projects_file)
        _atomic_write(
            self.projects_file, [ln for ln in projects if _parse_projects([ln]) != [prid]]
        )
        _atomic_write(self.projid_file, [ln for ln in projid if _entry(ln)[0] != name])
        return prid


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _entry(line: str) -> tuple[str, str]:
    """``(left, right)`` of a ``left:right`` line; empty strings for comments and junk."""
    line = line.strip()
    if not line or line.startswith("#") or ":" not in line:
        return "", ""
    left, _, right = line.partition(":")
    return left.strip(), right.strip()


def _parse_projid(lines: list[str]) -> dict[str, int]:
    out = {}
    for line in lines:
        name, ident = _entry(line)
        if name and ident.isdigit():
            out[name] = int(ident)
    return out


def _parse_projects(lines: list[str]) -> list[int]:
    return [int(i) for i, p in map(_entry, lines) if i.isdigit() and p]


def _atomic_write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{line}\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)  # the rename itself survives a crash
    finally:
        os.close(dirfd)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
