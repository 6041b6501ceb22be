"""Streaming writes to S3: one PUT for a small body, a multipart upload for a large or unknown one.

Chunks are gathered into parts of ``part-size``; up to ``upload-concurrency`` parts are in flight
while the next one fills, so memory stays near ``part-size × (concurrency + 1)``.  The object
appears only when the upload completes (S3's atomic publish); any failure or cancellation aborts
the multipart upload so no orphaned parts stay billed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .client import MAX_PARTS, S3Connection, translate


@dataclass(frozen=True, slots=True)
class PutResult:
    size: int
    etag: str


async def _hash(hashers: Sequence[Any], data: bytes) -> None:
    if hashers:  # hashlib releases the GIL on large buffers: keep the loop free
        await asyncio.to_thread(lambda: [h.update(data) for h in hashers])


async def put_stream(
    conn: S3Connection,
    key: str,
    stream: AsyncIterator[bytes],
    *,
    part_size: int,
    concurrency: int,
    hashers: Sequence[Any] = (),
    on_chunk: Callable[[int], Awaitable[None]] | None = None,
    extra: dict[str, Any] | None = None,
) -> PutResult:
    """Store ``stream`` at ``key``; ``on_chunk(n)`` is awaited before each chunk is accepted
    (the quota reservation), and may raise to abort the write."""
    extra = extra or {}
    buf = bytearray()
    size = 0
    upload_id: str | None = None
    parts: dict[int, str] = {}
    tasks: set[asyncio.Task[None]] = set()
    numbers = iter(range(1, MAX_PARTS + 2))
    slots = asyncio.Semaphore(concurrency)

    async def send(number: int, data: bytes) -> None:
        try:
            with translate(key):
                r = await conn.c.upload_part(
                    Bucket=conn.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
            parts[number] = r["ETag"]
        finally:
            slots.release()

    async def flush_part(data: bytes) -> None:
        nonlocal upload_id
        if upload_id is None:
            with translate(key):
                mp = await conn.c.create_multipart_upload(Bucket=conn.bucket, Key=key, **extra)
            upload_id = mp["UploadId"]
        number = next(numbers)
        if number > MAX_PARTS:
            raise ValueError(f"more than {MAX_PARTS} parts: raise part-size")
        await _hash(hashers, data)
        await slots.acquire()
        for done in [t for t in tasks if t.done()]:
            tasks.discard(done)
            done.result()  # a failed part fails the write now
        task = asyncio.create_task(send(number, data))
        tasks.add(task)

    try:
        async for chunk in stream:
            if on_chunk is not None:
                await on_chunk(len(chunk))
            buf += chunk
            size += len(chunk)
            while len(buf) >= part_size:
                data = bytes(buf[:part_size])
                del buf[:part_size]
                await flush_part(data)
        if upload_id is None:
            body = bytes(buf)
            await _hash(hashers, body)
            with translate(key):
                r = await conn.c.put_object(Bucket=conn.bucket, Key=key, Body=body, **extra)
            return PutResult(size, r["ETag"])
        if buf:
            await flush_part(bytes(buf))
        if tasks:
            await asyncio.gather(*tasks)
        with translate(key):
            r = await conn.c.complete_multipart_upload(
                Bucket=conn.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": parts[n]} for n in sorted(parts)]
                },
            )
        return PutResult(size, r["ETag"])
    except BaseException:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if upload_id is not None:
            await asyncio.shield(conn.abort(key, upload_id))
        raise


async def file_chunks(path: str, chunk: int) -> AsyncIterator[bytes]:
    """A local file as a stream of ``chunk``-sized reads done in a thread (tus publish)."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while data := await asyncio.to_thread(f.read, chunk):
            yield data
    finally:
        await asyncio.to_thread(f.close)


_END = b""


async def prefetched(
    source: AsyncIterator[bytes], chunk: int, depth: int = 64
) -> AsyncIterator[bytes]:
    """Read ``source`` ahead in a task while the consumer writes, and hand out what has arrived
    joined into chunks of up to ``chunk`` bytes: the S3 side keeps streaming while the client
    side drains, and the client side does fewer, larger writes."""
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for data in source:
                await queue.put(data)
            await queue.put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            await queue.put(e)

    task = asyncio.create_task(pump())
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is _END or not item:
                return
            parts, size = [item], len(item)
            while size < chunk and not queue.empty():
                more = queue.get_nowait()
                if isinstance(more, BaseException) or not more:  # the end: flush, then stop
                    yield b"".join(parts)
                    if isinstance(more, BaseException):
                        raise more
                    return
                parts.append(more)
                size += len(more)
            yield parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
