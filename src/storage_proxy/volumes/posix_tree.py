"""Reading a local tree from a held root: listings, stats and opened files.

The same steps serve a vfolder and a snapshot of one, so both resolve paths the same race-free
way (:mod:`.beneath`) and a snapshot's tree is read-only by having nothing but these.
Blocking: call from the volume's I/O pool.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import FileNotFound, IsADirectory
from ..core.files import LocalFile, ReadOptions
from ..core.paths import RelPath
from ..core.types import DirEntry
from . import beneath, fstree
from . import posix_fs as fs
from .beneath import errors_as, opened
from .snapshots import SnapshotTree

Skip = Callable[[str], bool]


def scandir_at(
    root: int, rel: RelPath, recursive: bool, limit: int | None, skip: Skip | None = None
) -> list[DirEntry]:
    """Entries below ``rel`` (``skip``: names left out, with what is below them)."""
    out: list[DirEntry] = []
    with errors_as(rel):
        fd = beneath.open_beneath(root, rel.parts, fstree.O_LIST_DIR)
        with opened(fd):
            prefix = str(rel) if rel.parts else ""
            skipped: list[str] = []
            for _, entry in fstree.walk(fd, prefix, recursive=recursive):
                if skip is not None and (
                    skip(entry.name) or any(entry.path.startswith(s) for s in skipped)
                ):
                    skipped.append(entry.path + "/")
                    continue
                out.append(fs.dir_entry(entry.name, entry.path, entry.stat, entry.link_target))
                if limit is not None and len(out) >= limit:
                    break
    return out


def stat_at(root: int, rel: RelPath) -> DirEntry:
    with errors_as(rel):
        if not rel.parts:
            return fs.dir_entry(".", ".", os.fstat(root))
        with opened(beneath.open_parent(root, rel)) as parent:
            st = beneath.lstat_at(parent, rel.name)
            target = ""
            if stat_mod.S_ISLNK(st.st_mode):
                target = os.fsdecode(os.readlink(rel.name, dir_fd=parent))
            return fs.dir_entry(rel.name, str(rel), st, target)


def local_file_at(root: int, rel: RelPath, read_up_to: int) -> LocalFile:
    """A regular file or directory opened for reading, with its bytes if small enough."""
    with errors_as(rel):
        return fs.open_local(root, rel, read_up_to, nowait=False)


async def read_local(
    local: LocalFile, rel: RelPath, options: ReadOptions, run: Callable[..., Awaitable[Any]]
) -> AsyncIterator[bytes]:
    """The bytes of an opened file, chunk by chunk, from the pool."""
    with local:
        if local.is_dir:
            raise IsADirectory(f"is a directory: {rel}")
        offset, remaining = options.offset, options.length
        while remaining is None or remaining > 0:
            want = options.chunk_size if remaining is None else min(remaining, options.chunk_size)
            with errors_as(rel):
                chunk = await run(os.pread, local.fd, want, offset)
            if not chunk:
                break
            offset += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


class PosixTree(SnapshotTree):
    """A snapshot held as a local directory tree (a CephFS ``.snap`` entry, an ONTAP
    ``.snapshot`` directory, a reflinked copy): read through the same steps as a vfolder.

    Files the proxy was still writing when the snapshot was taken (staged beside their
    target) are not part of it: they are left out of listings and cannot be opened.
    """

    def __init__(
        self,
        path: Path,
        run: Callable[..., Awaitable[Any]],
        *,
        hidden: frozenset[str] = frozenset(),
        skip: Skip | None = None,
    ) -> None:
        self.path = path
        self._run = run
        self._hidden = hidden
        self._skip = skip

    @contextmanager
    def _root(self) -> Iterator[int]:
        try:
            fd = beneath.open_root(self.path)
        except FileNotFoundError:
            raise FileNotFound("the snapshot is gone") from None
        with opened(fd), beneath.hidden_below(fd, self._hidden):
            yield fd

    def _check(self, rel: RelPath) -> None:
        if self._skip is not None and any(self._skip(part) for part in rel.parts):
            raise FileNotFound(f"no such file or directory: {rel}")

    def _with_root(self, op: Callable[[int], Any]) -> Any:
        with self._root() as root:
            return op(root)

    async def scandir(
        self, relpath: RelPath, *, recursive: bool = False, limit: int | None = None
    ) -> list[DirEntry]:
        self._check(relpath)
        return await self._run(  # type: ignore[no-any-return]
            self._with_root, lambda r: scandir_at(r, relpath, recursive, limit, self._skip)
        )

    async def stat(self, relpath: RelPath) -> DirEntry:
        self._check(relpath)
        return await self._run(self._with_root, lambda r: stat_at(r, relpath))  # type: ignore[no-any-return]

    async def local_file(self, relpath: RelPath, *, read_up_to: int = 0) -> LocalFile | None:
        self._check(relpath)
        return await self._run(  # type: ignore[no-any-return]
            self._with_root, lambda r: local_file_at(r, relpath, read_up_to)
        )

    async def read(
        self, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]:
        local = await self.local_file(relpath)
        assert local is not None
        async for chunk in read_local(local, relpath, options, self._run):
            yield chunk
