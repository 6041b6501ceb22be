"""Reading files of a local directory tree: the opened file a download is sent from, and byte
ranges as a stream.  Every path is resolved beneath a held descriptor of the vfolder root.

Small reads are the hot path of datasets of many small files, so on a local file system
(``inline_reads``) the file is opened on the event loop -- a few system calls on cached
metadata cost less than the hop to a worker thread and back -- and its content is read there
only if it is in the page cache (``RWF_NOWAIT``); otherwise the read goes to a thread.
"""

from __future__ import annotations

import contextlib
import os
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, ParamSpec, TypeVar

from ..core.errors import IsADirectory, VFolderNotFound
from ..core.files import LocalFile, ReadOptions
from ..core.paths import RelPath
from ..core.types import VFolderID
from . import posix_fs as fs
from .abc import AbstractVolume
from .beneath import errors_as
from .heldroots import HeldRoots

P = ParamSpec("P")
R = TypeVar("R")
#: Vfolder directories remembered as strings (one entry per vfolder read from).
ROOT_PATHS_KEPT = 100_000


class PosixReads(AbstractVolume):
    """The read half of :class:`~.posix.BasePosixVolume`."""

    #: Open small files on the event loop (a local file system: lookups never wait on a network;
    #: content is read there only from the page cache). Network file systems leave it False.
    inline_reads: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._root_paths: dict[VFolderID, str] = {}
        #: roots kept open between inline reads (set up by ``init`` where they can be), and
        #: the file of the node's counter that lets go of them (kept after a shutdown)
        self._held_roots: HeldRoots | None = None
        self._roots_counter: str | None = None

    @abstractmethod
    def _root(self, vfid: VFolderID, path: str | None = None) -> AbstractContextManager[int]:
        """The vfolder's root, held open for a block (blocking)."""

    @abstractmethod
    def vfolder_path(self, vfid: VFolderID) -> Path:
        """Where the vfolder's directory is."""

    async def _retry_missing(
        self, vfid: VFolderID, rel: RelPath, op: Callable[[], Awaitable[R]]
    ) -> R:
        """Run a lookup that expects ``rel`` to exist; filesystems with attribute caching (NFS)
        retry a "not found" here. The local default believes the first answer."""
        return await op()

    async def _run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.run_blocking(func, *args, **kwargs)

    def _root_path(self, vfid: VFolderID) -> str:
        """The vfolder's directory as a string, computed once per vfolder."""
        if len(self._root_paths) >= ROOT_PATHS_KEPT:
            self._root_paths.clear()
        return self._root_paths.setdefault(vfid, str(self.vfolder_path(vfid)))

    async def local_file(
        self, vfid: VFolderID, relpath: RelPath, *, read_up_to: int = 0
    ) -> LocalFile | None:
        if not self.inline_reads:
            find = partial(self._open_local, vfid, None, relpath, read_up_to)
            return await self._retry_missing(vfid, relpath, lambda: self._run(find))
        # a few syscalls on cached metadata: cheaper than a thread hop; content from the cache
        root = self._root_paths.get(vfid) or self._root_path(vfid)
        held = self._held_roots
        if held is None:
            local = self._open_local(vfid, root, relpath, read_up_to, True)
        else:  # the root stays open for the next reads (no await until the file is open)
            root_fd = held.fd(vfid, root, self._missing)
            with errors_as(relpath):
                local = fs.open_local(root_fd, relpath, read_up_to, nowait=True)
        st = local.stat
        if local.body is None and read_up_to and st.st_size <= read_up_to and not local.is_dir:
            with errors_as(relpath), contextlib.ExitStack() as undo:
                undo.callback(local.close)
                local.body = await self._run(fs.read_small, local.fd, read_up_to + 1, st.st_size)
                undo.pop_all()
        return local

    def _missing(self, vfid: VFolderID) -> VFolderNotFound:
        return VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")

    def _open_local(
        self, vfid: VFolderID, root: str | None, rel: RelPath, read_up_to: int, nowait=False
    ) -> LocalFile:
        with self._root(vfid, root) as root_fd, errors_as(rel):
            return fs.open_local(root_fd, rel, read_up_to, nowait=nowait)

    async def read(
        self, vfid: VFolderID, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]:
        local = await self.local_file(vfid, relpath)
        assert local is not None
        with local:
            if local.is_dir:
                raise IsADirectory(f"is a directory: {relpath}")
            offset, remaining = options.offset, options.length
            while remaining is None or remaining > 0:
                want = min(remaining or options.chunk_size, options.chunk_size)
                with errors_as(relpath):
                    chunk = await self._run(os.pread, local.fd, want, offset)
                if not chunk:
                    break
                offset += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
