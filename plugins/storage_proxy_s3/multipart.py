"""Writes to S3: one PUT for a small body, a multipart upload with parts in parallel otherwise.

Up to ``upload-concurrency`` parts are in flight (:class:`Window`) while the next one fills, so
memory stays near ``part-size × (concurrency + 1)``.  The object appears only when the upload
completes (S3's atomic publish); a failure or cancellation aborts the multipart upload so no
orphaned parts stay billed.  Parts carry ``x-amz-checksum-sha256`` when the endpoint verifies it
(``checksums.py``).

The object's identity (the ETag the file metadata is trusted against) never comes from the
completion answer alone: Ceph RGW 16.2 answers ``CompleteMultipartUpload`` with an empty ETag.
When it is empty, the ETag is computed from the parts' ETags by S3's multipart rule (the MD5 of
their MD5s, then ``-<parts>``), and only when the parts' ETags are not MD5s (SSE-KMS) read back
with a HEAD.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from storage_proxy.core.errors import BackendUnavailable

from .checksums import check_echo
from .client import MAX_PARTS, S3Connection, translate
from .signing import known_payload
from .window import Window


@dataclass(frozen=True, slots=True)
class PutResult:
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    sha256: str | None = None  # base64; set when the endpoint verifies checksums

    def completion(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"PartNumber": self.number, "ETag": self.etag}
        if self.sha256 is not None:
            entry["ChecksumSHA256"] = self.sha256
        return entry


def _md5_hex(etag: str) -> bytes | None:
    value = etag.strip('"')
    if len(value) != 32:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def multipart_etag(parts: Sequence[Part]) -> str | None:
    """S3's ETag of a multipart object made of ``parts``; None if a part's ETag is no MD5."""
    digests = [_md5_hex(p.etag) for p in sorted(parts, key=lambda p: p.number)]
    if not digests or any(d is None for d in digests):
        return None
    joined = b"".join(d for d in digests if d is not None)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(digests)}"'


def new_hashers(checksums: bool) -> list[Any]:
    """sha256 then md5 of the whole object, fed while it streams (none without checksums)."""
    return [hashlib.sha256(), hashlib.md5()] if checksums else []


def digest(data: bytes | memoryview, hashers: Sequence[Any]) -> bytes:
    """Feed ``hashers`` (whole-object checksums) and return the body's own sha256: it is signed
    (``signing.py``) and, where the endpoint verifies it, sent as ``x-amz-checksum-sha256``.

    Runs in a thread: hashlib releases the GIL on large buffers."""
    for h in hashers:
        h.update(data)
    return hashlib.sha256(data).digest()


#: Bodies up to this size are hashed on the loop (a thread hop costs more).
_HASH_INLINE = 64 << 10


async def digest_off_loop(data: bytes | memoryview, hashers: Sequence[Any]) -> bytes:
    if len(data) <= _HASH_INLINE:
        return digest(data, hashers)
    return await asyncio.to_thread(digest, data, hashers)


def _b64(sha256: bytes) -> str:
    return base64.b64encode(sha256).decode()


class MultipartUpload:
    """One multipart upload of ``key``: parts sent, then completed or aborted."""

    def __init__(self, conn: S3Connection, key: str, upload_id: str, checksums: bool) -> None:
        self.conn = conn
        self.key = key
        self.upload_id = upload_id
        self.checksums = checksums

    @classmethod
    async def create(
        cls, conn: S3Connection, key: str, extra: dict[str, Any] | None = None
    ) -> MultipartUpload:
        kw = dict(extra or {})
        if conn.sha256:
            kw["ChecksumAlgorithm"] = "SHA256"
        with translate(key):
            r = await conn.c.create_multipart_upload(Bucket=conn.bucket, Key=key, **kw)
        return cls(conn, key, r["UploadId"], conn.sha256)

    async def send(self, number: int, data: bytes, sha256: bytes | None = None) -> Part:
        """Upload part ``number``; ``sha256``: its digest, if the caller has it (computed off
        the loop otherwise); signed, and sent as a checksum where the endpoint verifies it."""
        if number > MAX_PARTS:
            raise BackendUnavailable(f"more than {MAX_PARTS} parts: raise the volume's part-size")
        if sha256 is None:
            sha256 = await digest_off_loop(data, ())
        kw: dict[str, Any] = {}
        if self.checksums:
            kw["ChecksumSHA256"] = _b64(sha256)
        body = io.BytesIO(data)  # as botocore would wrap it, but the signer knows this one
        with translate(self.key), known_payload(body, sha256, data):
            r = await self.conn.c.upload_part(
                Bucket=self.conn.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                **kw,
            )
        check_echo(r, kw.get("ChecksumSHA256"), f"part {number} of {self.key}")
        return Part(number, str(r["ETag"]), kw.get("ChecksumSHA256"))

    async def complete(self, parts: Iterable[Part], size: int) -> PutResult:
        ordered = sorted(parts, key=lambda p: p.number)
        with translate(self.key):
            r = await self.conn.c.complete_multipart_upload(
                Bucket=self.conn.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": [p.completion() for p in ordered]},
            )
        etag = str(r.get("ETag") or "").strip() or multipart_etag(ordered)
        if not etag:  # neither answered nor computable: read it back
            head = await self.conn.head(self.key)
            if head is None or int(head["ContentLength"]) != size:
                raise BackendUnavailable(f"S3 does not show {self.key} after completing it")
            etag = str(head["ETag"])
        return PutResult(size, etag)

    async def abort(self) -> None:
        await asyncio.shield(self.conn.abort(self.key, self.upload_id))


async def put_object(
    conn: S3Connection, key: str, body: bytes, hashers: Sequence[Any], extra: dict[str, Any]
) -> PutResult:
    """One PUT; with checksums verified by the endpoint, the body's sha256 goes with it."""
    sha256 = await digest_off_loop(body, hashers)
    sha = _b64(sha256) if conn.sha256 else None
    kw = {**extra, "ChecksumSHA256": sha} if sha is not None else extra
    wrapped = io.BytesIO(body)  # as botocore would wrap it, but the signer knows this one
    with translate(key), known_payload(wrapped, sha256, body):
        r = await conn.c.put_object(Bucket=conn.bucket, Key=key, Body=wrapped, **kw)
    check_echo(r, sha, key)
    return PutResult(len(body), str(r["ETag"]))


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
    pending: list[bytes] = []
    buffered = size = number = 0
    upload: MultipartUpload | None = None
    parts: list[Part] = []
    window = Window(concurrency)

    async def flush(data: bytes) -> None:
        nonlocal upload, number
        if upload is None:
            upload = await MultipartUpload.create(conn, key, extra)
        number += 1
        # the whole-object hashers see the parts in order: each is hashed before it is queued
        sha = await digest_off_loop(data, hashers)
        await window.submit(partial(_send_into, parts, upload, number, data, sha))

    try:
        async for chunk in stream:
            if on_chunk is not None:
                await on_chunk(len(chunk))
            pending.append(chunk)
            buffered += len(chunk)
            size += len(chunk)
            if buffered >= part_size:
                joined = b"".join(pending)  # no copy when one chunk is the whole part
                offset = 0
                while len(joined) - offset >= part_size:
                    whole = offset == 0 and len(joined) == part_size
                    await flush(joined if whole else joined[offset : offset + part_size])
                    offset += part_size
                pending = [joined[offset:]] if offset < len(joined) else []
                buffered = len(joined) - offset
        tail = b"".join(pending)
        if upload is None:
            return await put_object(conn, key, tail, hashers, extra)
        if tail:
            await flush(tail)
        await window.drain()
        return await upload.complete(parts, size)
    except BaseException:
        await window.cancel()
        if upload is not None:
            await upload.abort()
        raise


async def _send_into(
    parts: list[Part], upload: MultipartUpload, number: int, data: bytes, sha: bytes
) -> None:
    parts.append(await upload.send(number, data, sha))


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
