"""A directory as a streamed zip: written in a worker thread, handed over through a bounded queue.

Memory stays bounded by the queue (a few MiB) whatever the tree size; entries use data
descriptors and ZIP64, so nothing needs seeking and files over 4 GiB are fine.
"""

from __future__ import annotations

import asyncio
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

_QUEUE_DEPTH = 8
_READ_SIZE = 1 << 20
_DONE = object()


class _QueueWriter:
    """A write-only file object that blocks the producer thread while the queue is full."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
        self._loop = loop
        self._queue = queue
        self._pos = 0
        self.cancelled = False

    def write(self, data: bytes) -> int:
        if self.cancelled:
            raise BrokenPipeError("the client went away")
        if data:
            asyncio.run_coroutine_threadsafe(self._queue.put(bytes(data)), self._loop).result()
            self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass


def _write_zip(root: Path, out: _QueueWriter) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[call-overload]
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != "." and not filenames and not dirnames:
                zf.writestr(rel_dir.replace(os.sep, "/") + "/", b"")
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue  # links are not followed: nothing outside the folder leaks
                arcname = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
                info = zipfile.ZipInfo.from_file(path, arcname)
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                    while chunk := src.read(_READ_SIZE):
                        dst.write(chunk)


async def stream_zip(root: Path) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(_QUEUE_DEPTH)
    writer = _QueueWriter(loop, queue)

    def produce() -> None:
        try:
            _write_zip(root, writer)
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(_DONE), loop)

    task = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not _DONE:
            yield item  # type: ignore[misc]
    finally:
        writer.cancelled = True
        while not task.done():  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
        try:
            await task
        except BrokenPipeError:
            pass
