"""Local files written in the background, and resumable uploads staged in a local directory.

:class:`FileSink` turns network chunks into large vectored writes in a worker thread while the
next chunks arrive.  :class:`LocalStaging` keeps one file per upload session: the staged size is
the resumable offset, an ``flock`` keeps two writers (worker processes, or nodes sharing the
directory) from appending at once, and backends publish the complete file their own way (a
rename on POSIX volumes, a multipart upload on S3).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidPath, UploadNotFound, UploadOffsetMismatch

_WRITE_BUFFER = 4 << 20
_MAX_IOV = 512  # below IOV_MAX (1024)
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class LocalStagingUploads:
    """The staging half of the volume upload interface, for backends that stage locally; a
    backend sets ``self.staging`` and implements only ``upload_publish``."""

    staging: LocalStaging

    def _staged(self, session_id: str) -> Path:
        return self.staging.path(session_id)

    async def upload_prepare(self, session_id: str) -> None:
        await self.staging.prepare(session_id)

    async def upload_size(self, session_id: str) -> int:
        return await self.staging.size(session_id)

    async def upload_append(
        self, session_id: str, offset: int, stream: AsyncIterator[bytes]
    ) -> int:
        return await self.staging.append(session_id, offset, stream)

    async def upload_truncate(self, session_id: str, size: int) -> None:
        await self.staging.truncate(session_id, size)

    async def upload_discard(self, session_id: str) -> None:
        await self.staging.discard(session_id)


class LocalStaging:
    """One file per upload session under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id):
            raise InvalidPath(f"not an upload session id: {session_id!r}")
        return self.directory / session_id

    async def prepare(self, session_id: str) -> None:
        path = self.path(session_id)

        def create() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)

        await asyncio.to_thread(create)

    async def size(self, session_id: str) -> int:
        try:
            return (await asyncio.to_thread(os.stat, self.path(session_id))).st_size
        except FileNotFoundError:
            raise UploadNotFound(f"no staged data for upload {session_id}") from None

    async def append(self, session_id: str, offset: int, stream: AsyncIterator[bytes]) -> int:
        """Append at ``offset``, which must be the staged size (UploadOffsetMismatch, carrying the
        staged size, if not); whatever arrived before the stream failed stays staged."""
        path = self.path(session_id)
        try:
            fd = await asyncio.to_thread(_open_for_append, path, offset)
        except FileNotFoundError:
            raise UploadNotFound(f"no staged data for upload {session_id}") from None
        sink = FileSink(fd)
        try:
            try:
                async for chunk in stream:
                    await sink.write(chunk)
            finally:
                await sink.flush()  # keep what arrived: the client resumes from there
        finally:
            await asyncio.to_thread(os.close, fd)
        return offset + sink.written

    async def truncate(self, session_id: str, size: int) -> None:
        await asyncio.to_thread(os.truncate, self.path(session_id), size)

    async def discard(self, session_id: str) -> None:
        try:
            await asyncio.to_thread(self.path(session_id).unlink)
        except FileNotFoundError:
            pass


class FileSink:
    """Gathers network chunks into large vectored writes, done (and hashed) in a thread.

    Chunks are kept as they arrived and handed to ``writev`` (no joining copy on the event loop),
    and one batch is written while the next is received: the disk and the network overlap.
    Batches stay in order because a batch starts only when the one before it has finished.
    """

    def __init__(self, fd: int, hashers: Sequence[Any] = ()) -> None:
        self._fd = fd
        self._hashers = list(hashers)
        self._chunks: list[bytes] = []
        self._pending = 0
        self._writing: asyncio.Future[None] | None = None
        self.written = 0

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
                asyncio.to_thread(_write_all, self._fd, chunks, self._hashers)
            )
            self.written += size

    async def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def flush(self) -> None:
        """Write everything received so far; returns when it is on the file."""
        await self._submit()
        await self._wait()


def _write_all(fd: int, chunks: list[bytes], hashers: Sequence[Any] = ()) -> None:
    for hasher in hashers:  # hashlib releases the GIL on large buffers
        for chunk in chunks:
            hasher.update(chunk)
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):  # drop what was written; resume a partial one
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]


def _open_for_append(path: Path, offset: int) -> int:
    """Open a staged upload at ``offset``, holding its lock: two writers (worker processes, or
    nodes sharing the volume) never append to one upload at once.  The staged size is read under
    the lock, so a writer that finished a moment ago is seen, not overwritten."""
    fd = os.open(path, os.O_WRONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("this upload is already receiving data; retry when it stops") from None
        staged = os.fstat(fd).st_size
        if staged != offset:
            raise UploadOffsetMismatch(
                f"Upload-Offset {offset} does not match the stored offset {staged}", offset=staged
            )
    except BaseException:
        os.close(fd)
        raise
    os.lseek(fd, offset, os.SEEK_SET)
    return fd
