"""Local files written in the background, and resumable uploads staged in a local directory.

:class:`FileSink` turns network chunks into large vectored writes in a worker thread while the
next chunks arrive.  :class:`LocalStaging` keeps one file per upload session: the staged size is
the resumable offset.  Every change to a staged file — an append, a whole-body replacement, the
discarding of a refused or unverifiable chunk, the publication — happens while one writer holds
the file's ``flock`` (:class:`StagedFile`), so two writers (requests, worker processes, or nodes
sharing the directory) never interleave, and the offset is always checked under that lock.
Backends publish the complete file their own way (a rename on POSIX volumes, a multipart upload
on S3) from the held descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..core.errors import (
    Conflict,
    InvalidPath,
    StorageProxyError,
    UploadNotFound,
    UploadOffsetMismatch,
)
from .abc import AppendOptions, StagedFile, UploadTarget
from .fstree import join_files

_WRITE_BUFFER = 4 << 20
_MAX_IOV = 512  # below IOV_MAX (1024)
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")

log = logging.getLogger(__name__)

Runner = Callable[..., Awaitable[Any]]


async def _to_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(func, *args, **kwargs)


class LocalStagingUploads:
    """The staging half of the volume upload interface, for backends that stage locally; a
    backend sets ``self.staging`` and implements only ``upload_publish``."""

    staging: LocalStaging

    def _staged(self, session_id: str) -> Path:
        return self.staging.path(session_id)

    async def upload_prepare(self, session_id: str, target: UploadTarget) -> None:
        await self.staging.prepare(session_id)

    async def upload_size(self, session_id: str) -> int:
        return await self.staging.size(session_id)

    def upload_hold(self, session_id: str) -> Any:
        return self.staging.hold(session_id)

    async def upload_append(
        self,
        held: StagedFile,
        offset: int,
        stream: AsyncIterator[bytes],
        options: AppendOptions = AppendOptions(),
    ) -> int:
        return await self.staging.append(held, offset, stream, options)

    async def upload_concat(self, held: StagedFile, parts: Sequence[StagedFile]) -> int:
        return await self.staging.concat(held, parts)

    async def upload_discard(self, session_id: str) -> None:
        await self.staging.discard(session_id)

    async def staged_uploads(self, older_than: float) -> list[str]:
        return await self.staging.stale(older_than)


@dataclass(slots=True)
class LocalStagedFile(StagedFile):
    """A staged upload file held by one writer: open, ``flock``-ed, in its directory."""

    path: Path
    fd: int
    dir_fd: int
    #: After a join (``concat``): the held parts' descriptors, in order — the same bytes, to
    #: hash from the parts' cached pages (a file sharing their blocks has none of its own yet).
    parts: tuple[int, ...] = ()

    def content_fds(self) -> tuple[int, ...]:
        """Descriptors whose bytes, one after the other, are this file's."""
        return self.parts or (self.fd,)

    def size(self) -> int:
        return os.fstat(self.fd).st_size


class LocalStaging:
    """One file per upload session under ``directory``."""

    def __init__(self, directory: Path, run: Runner | None = None) -> None:
        self.directory = directory
        self._run = run or _to_thread

    def path(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id):
            raise InvalidPath(f"not an upload session id: {session_id!r}")
        return self.directory / session_id

    async def prepare(self, session_id: str) -> None:
        path = self.path(session_id)

        def create() -> None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))

        await self._run(create)

    async def stale(self, older_than: float) -> list[str]:
        """Sessions whose staged file was last written before ``older_than``."""

        def find() -> list[str]:
            try:
                entries = list(os.scandir(self.directory))
            except FileNotFoundError:
                return []
            return [
                e.name
                for e in entries
                if _SESSION_ID.match(e.name) and e.stat(follow_symlinks=False).st_mtime < older_than
            ]

        return await self._run(find)

    async def size(self, session_id: str) -> int:
        try:
            return int((await self._run(os.stat, self.path(session_id))).st_size)
        except FileNotFoundError:
            raise UploadNotFound(f"no staged data for upload {session_id}") from None

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[LocalStagedFile]:
        """Take the writer's lock on a staged upload for the block (Conflict if it is held)."""
        locking = asyncio.ensure_future(self._run(_lock, self.path(session_id), session_id))
        try:
            held = await asyncio.shield(locking)
        except asyncio.CancelledError:
            # The thread may still take the lock after this task was cancelled (a client gone,
            # a shutdown): it is given back as soon as it is taken, never left held.
            locking.add_done_callback(_unlock_late)
            raise
        try:
            yield held
        finally:
            await self._run(_unlock, held)

    async def append(
        self,
        held: StagedFile,
        offset: int,
        stream: AsyncIterator[bytes],
        options: AppendOptions = AppendOptions(),
    ) -> int:
        """Write ``stream`` at ``offset``, which must be the staged size (``UploadOffsetMismatch``
        carrying that size, before anything is read; with ``replace``, 0 after dropping what is
        staged).  A refused stream (a ``StorageProxyError``: quota, length, failed ``verify``)
        leaves the file as it was; any other failure keeps what arrived if ``keep_partial``."""
        assert isinstance(held, LocalStagedFile)
        fd = held.fd
        staged = await self._run(held.size)
        if options.replace:
            if offset != 0:
                raise UploadOffsetMismatch("a replacement starts at offset 0", offset=staged)
            await self._run(os.ftruncate, fd, 0)
        elif staged != offset:
            raise UploadOffsetMismatch(
                f"Upload-Offset {offset} does not match the stored offset {staged}", offset=staged
            )
        sink = FileSink(fd, options.hashers, self._run, offset=offset)
        try:
            async for chunk in stream:
                await sink.write(chunk)
            await sink.flush()
            if options.verify is not None:
                options.verify()
        except BaseException as e:
            if isinstance(e, StorageProxyError) or not options.keep_partial:
                await sink.abandon()
                await self._run(os.ftruncate, fd, offset)  # the chunk is not kept
            else:
                with contextlib.suppress(Exception):
                    await sink.flush()  # keep what arrived: the client resumes from there
                await sink.abandon()
            raise
        return offset + sink.written

    async def concat(self, held: StagedFile, parts: Sequence[StagedFile]) -> int:
        """Append the staged bytes of ``parts`` (held, complete) to ``held``, in order, sharing
        their blocks where the filesystem can (``fstree.join_files``); returns the new size."""
        assert isinstance(held, LocalStagedFile)
        sources = [p.fd for p in parts if isinstance(p, LocalStagedFile)]
        if len(sources) != len(parts):
            raise TypeError("only locally staged parts can be joined here")
        empty = await self._run(held.size) == 0
        report = await self._run(join_files, held.fd, sources)
        held.parts = tuple(sources) if empty else ()  # else: hashed from the file itself
        log.info("joined %d staged parts into %s: %s", len(parts), held.session_id, report)
        return report.size

    async def discard(self, session_id: str) -> None:
        """Remove the staged file, unless a writer holds it (Conflict); a missing one is fine."""
        try:
            async with self.hold(session_id) as held:
                await self._run(os.unlink, held.path.name, dir_fd=held.dir_fd)
        except UploadNotFound:
            pass


def _lock(path: Path, session_id: str) -> LocalStagedFile:
    try:
        dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UploadNotFound(f"no staged data for upload {session_id}") from None
    try:
        try:
            fd = os.open(path.name, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            raise UploadNotFound(f"no staged data for upload {session_id}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict("this upload is already receiving data; retry when it stops") from None
    except BaseException:
        os.close(dir_fd)
        raise
    return LocalStagedFile(session_id, path, fd, dir_fd)


def _unlock(held: LocalStagedFile) -> None:
    os.close(held.fd)  # releases the flock
    os.close(held.dir_fd)


def _unlock_late(locking: asyncio.Future[LocalStagedFile]) -> None:
    """A lock taken for a holder that is gone (two ``close`` calls: fine on the loop)."""
    if not locking.cancelled() and locking.exception() is None:
        _unlock(locking.result())


def is_abandoned_at(dir_fd: int, name: str) -> bool:
    """Whether nobody writes a staged file (or tree) now — its lock is free: a crash's leftover."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd
        )
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


class FileSink:
    """Gathers network chunks into large vectored writes, done (and hashed) in a thread.

    Chunks are kept as they arrived and handed to ``pwritev`` (no joining copy on the event
    loop), and one batch is written while the next is received: the disk and the network
    overlap.  Batches stay in order because a batch starts only when the one before it has
    finished.  Used as an async context: leaving it — normally or by an error — waits for the
    batch in flight, so the descriptor is never closed under a writing thread; a normal exit
    also writes what is still buffered.
    """

    def __init__(
        self, fd: int, hashers: Sequence[Any] = (), run: Runner | None = None, offset: int = 0
    ) -> None:
        self._fd = fd
        self._hashers = list(hashers)
        self._run = run or _to_thread
        self._offset = offset
        self._chunks: list[bytes] = []
        self._pending = 0
        self._writing: asyncio.Future[None] | None = None
        self.written = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.flush()
        else:
            await self.abandon()

    async def abandon(self) -> None:
        """Drop what is buffered and wait for the batch in flight, whatever happens to this
        task meanwhile: afterwards nothing writes to the descriptor."""
        self._chunks, self._pending = [], 0
        writing, self._writing = self._writing, None
        # The thread finishes before the caller may close the descriptor, even if this task is
        # cancelled meanwhile; its own error is dropped (the first error is the one that counts).
        while writing is not None and not writing.done():
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break

    async def write(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self._pending += len(chunk)
            if self._pending >= _WRITE_BUFFER or len(self._chunks) >= _MAX_IOV:
                await self._submit()

    async def _submit(self) -> None:
        await self._wait()
        if self._chunks:
            chunks, size = self._chunks, self._pending
            self._chunks, self._pending = [], 0
            self._writing = asyncio.ensure_future(
                self._run(write_all, self._fd, chunks, self._hashers, self._offset)
            )
            self._offset += size
            self.written += size

    async def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def flush(self) -> None:
        """Write everything received so far; returns when it is on the file."""
        await self._submit()
        await self._wait()


def write_all(fd: int, chunks: list[bytes], hashers: Sequence[Any], offset: int) -> None:
    for hasher in hashers:  # hashlib releases the GIL on large buffers
        for chunk in chunks:
            hasher.update(chunk)
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.pwritev(fd, views, offset)
        offset += n
        while views and n >= len(views[0]):  # drop what was written; resume a partial one
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]


__all__ = [
    "FileSink",
    "LocalStagedFile",
    "LocalStaging",
    "LocalStagingUploads",
    "is_abandoned_at",
    "write_all",
]
