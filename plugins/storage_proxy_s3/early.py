"""Resumable uploads that reach S3 while they arrive: parts sent before the upload completes.

A tus upload is staged locally (``staging.py`` says why), and publishing it used to start only
once its last byte had arrived: the client then waited for a whole second transfer.  Here, once a
PATCH has been accepted, every complete part below its starting offset is sent in the background
into a multipart upload of the target key (created with the first part).  Those bytes can no
longer change: a refused chunk is cut back to its own start, never below.  Publishing sends what
is left and completes the upload.

The state lives beside the staged file, so another worker or node sharing the staging directory,
or a restarted daemon, carries on with it: ``<session>.s3parts`` (JSON: key, upload id, part
size, whether parts carry checksums, content type, the parts sent), replaced atomically, and
``<session>.s3lock``, an ``flock`` held while parts are sent or the upload is completed or
aborted.  Sending early is best effort: a process that cannot take the lock leaves the work to
the one that holds it, a failure stops it, and publishing sends whatever is missing.  When the
target, part size, checksum mode or content type no longer match, or completing fails, the early
upload is aborted and the staged file published as before.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from storage_proxy.core.errors import Conflict, StorageProxyError
from storage_proxy.volumes.staging import LocalStaging

from .client import MIN_PART, S3Connection
from .multipart import MultipartUpload, Part, PutResult, digest
from .prehash import RunningHashes, hash_in_parallel
from .window import Window

log = logging.getLogger(__name__)

_STATE, _LOCK = ".s3parts", ".s3lock"
#: How long publishing or discarding waits for another process that is sending parts.
LOCK_WAIT = 120.0


@dataclass(frozen=True)
class Target:
    """Where a session is published: its key, content type, and whether the object's sha256
    and md5 are recorded (then hashed as the bytes arrive, ``prehash.py``)."""

    key: str
    content_type: str | None = None
    checksums: bool = False


#: session id → its target, or None when the session is unknown.
TargetLookup = Callable[[str], Awaitable[Target | None]]


@dataclass
class State:
    key: str
    upload_id: str
    part_size: int
    checksums: bool
    content_type: str | None
    parts: dict[int, Part] = field(default_factory=dict)

    def dumps(self) -> bytes:
        parts = {str(n): [p.etag, p.sha256] for n, p in sorted(self.parts.items())}
        return json.dumps(
            {
                "key": self.key,
                "upload_id": self.upload_id,
                "part_size": self.part_size,
                "checksums": self.checksums,
                "content_type": self.content_type,
                "parts": parts,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> State | None:
        try:
            d = json.loads(raw)
            parts = {int(n): Part(int(n), str(e), s) for n, (e, s) in d["parts"].items()}
            return cls(
                str(d["key"]),
                str(d["upload_id"]),
                int(d["part_size"]),
                bool(d["checksums"]),
                d["content_type"],
                parts,
            )
        except (ValueError, KeyError, TypeError):
            return None


class Sidecar:
    """A session's state file and its lock, beside the staged file."""

    def __init__(self, staged: Path) -> None:
        self.state_path = staged.with_name(staged.name + _STATE)
        self.lock_path = staged.with_name(staged.name + _LOCK)
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.state_path.exists() or self.lock_path.exists()

    async def lock(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            self._fd = await asyncio.to_thread(_try_lock, self.lock_path)
            if self._fd is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def unlock(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            await asyncio.to_thread(os.close, fd)

    async def load(self) -> State | None:
        try:
            raw = await asyncio.to_thread(self.state_path.read_bytes)
        except FileNotFoundError:
            return None
        state = State.loads(raw)
        if state is None:
            log.warning("ignoring an unreadable %s", self.state_path.name)
        return state

    async def save(self, state: State) -> None:
        await asyncio.to_thread(_replace, self.state_path, state.dumps())

    async def remove(self) -> None:
        for path in (self.state_path, self.lock_path):
            await asyncio.to_thread(path.unlink, missing_ok=True)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pread(path: Path, offset: int, size: int) -> tuple[bytes, bytes]:
    """Bytes of the staged file and their sha256 (signed with the part), read in one thread."""
    with open(path, "rb", buffering=0) as f:
        data = os.pread(f.fileno(), size, offset)
    return data, digest(data, ())


def tail_pieces(start: int, size: int, part_size: int, concurrency: int) -> list[tuple[int, int]]:
    """(offset, length) of the parts that carry bytes ``start``..``size``: at most ``part_size``
    each, and a short tail split into pieces of at least S3's minimum so that they go up in
    parallel rather than as one last part the client waits for."""
    rest = size - start
    piece = min(part_size, max(MIN_PART, -(-rest // concurrency)))
    return [(o, min(piece, size - o)) for o in range(start, size, piece)]


class EarlyParts:
    """The sessions of one volume whose parts this process is sending, and what publishing and
    discarding do with an early upload."""

    def __init__(
        self,
        conn: S3Connection,
        staging: LocalStaging,
        part_size: int,
        concurrency: int,
        target: TargetLookup,
    ) -> None:
        self.conn = conn
        self.staging = staging
        self.part_size = part_size
        self.concurrency = concurrency
        self.target = target
        self.slots = asyncio.Semaphore(concurrency)  # parts in memory, over all sessions
        self._runners: dict[str, _Runner] = {}
        self.hashes = RunningHashes()  # the whole-object checksums, as the bytes become final

    def advance(self, session_id: str, committed: int) -> None:
        """Bytes below ``committed`` are final: send the complete parts among them."""
        if committed < self.part_size:
            return
        runner = self._runners.get(session_id)
        if runner is None or runner.closing:
            runner = self._runners[session_id] = _Runner(self, session_id)
        runner.raise_to(committed)

    async def _settle(self, session_id: str, *, cancel: bool = False) -> None:
        runner = self._runners.get(session_id)
        if runner is not None:
            await runner.wait(cancel=cancel)

    def _forget(self, runner: _Runner) -> None:
        if self._runners.get(runner.session_id) is runner:
            del self._runners[runner.session_id]

    async def finish(
        self,
        session_id: str,
        key: str,
        size: int,
        content_type: str | None,
        checksums: bool,
        precondition: Awaitable[Any],
    ) -> tuple[PutResult, list[Any]] | None:
        """Send the missing parts, await ``precondition`` (it may raise: the early upload is then
        aborted), complete the early upload, and hash the staged file when ``checksums`` (the
        hashers are returned).  None when there is no early upload to complete: the caller
        publishes the staged file itself."""
        await self._settle(session_id)
        sidecar = Sidecar(self.staging.path(session_id))
        if not await sidecar.lock(LOCK_WAIT):
            raise Conflict("parts of this upload are still being sent to S3; retry shortly")
        try:
            state = await sidecar.load()
            if state is None:
                await sidecar.remove()
                return None
            upload = MultipartUpload(self.conn, state.key, state.upload_id, state.checksums)
            wanted = (key, self.part_size, self.conn.sha256, content_type)
            if size > 0 and wanted == (
                state.key,
                state.part_size,
                state.checksums,
                state.content_type,
            ):
                try:
                    result, hashers = await self._complete(
                        session_id, upload, state, size, checksums, precondition
                    )
                except StorageProxyError:
                    await upload.abort()  # the target refused it: nothing to publish
                    await sidecar.remove()
                    raise
                except Exception as e:  # publishing the staged file anew still works
                    log.warning("completing the early upload of %s failed: %s", key, e)
                else:
                    await sidecar.remove()
                    return result, hashers
            await upload.abort()
            await sidecar.remove()
            return None
        finally:
            self.hashes.drop(session_id)
            await sidecar.unlock()

    async def _complete(
        self,
        session_id: str,
        upload: MultipartUpload,
        state: State,
        size: int,
        checksums: bool,
        precondition: Awaitable[Any],
    ) -> tuple[PutResult, list[Any]]:
        staged = self.staging.path(session_id)
        sent = 0  # the parts sent early that start at byte 0 and follow each other
        while sent + 1 in state.parts and (sent + 1) * self.part_size <= size:
            sent += 1
        parts = [state.parts[n] for n in range(1, sent + 1)]  # later ones are dropped by S3
        hashing = asyncio.ensure_future(self._hash_rest(session_id, state, staged, size, checksums))
        window = Window(self.concurrency)

        async def send(number: int, start: int, length: int) -> None:
            data, sha256 = await asyncio.to_thread(_pread, staged, start, length)
            if len(data) != length:
                raise RuntimeError(f"the staged file is shorter than {size} bytes")
            parts.append(await upload.send(number, data, sha256))

        try:
            pieces = tail_pieces(sent * self.part_size, size, self.part_size, self.concurrency)
            for number, (start, length) in enumerate(pieces, start=sent + 1):
                await window.submit(partial(send, number, start, length))
            await window.drain()
            await precondition
            result = await upload.complete(parts, size)
            hashers = await hashing
        except BaseException:
            await window.cancel()
            hashing.cancel()
            await asyncio.gather(hashing, return_exceptions=True)
            raise
        return result, hashers

    async def _hash_rest(
        self, session_id: str, state: State, staged: Path, size: int, checksums: bool
    ) -> list[Any]:
        """The whole-object hashers: what the running hash has not seen yet, hashed now."""
        if not checksums:
            return []
        hashers, hashed = await self.hashes.take(session_id, state.upload_id)
        await hash_in_parallel(staged, hashed, size, hashers)
        return hashers

    async def discard(self, session_id: str) -> None:
        """Abort the session's early upload, if it has one, and remove its state."""
        await self._settle(session_id, cancel=True)
        self.hashes.drop(session_id)
        sidecar = Sidecar(self.staging.path(session_id))
        if not await asyncio.to_thread(sidecar.exists):
            return
        locked = await sidecar.lock(LOCK_WAIT)
        try:
            state = await sidecar.load()
            if state is not None:
                await MultipartUpload(self.conn, state.key, state.upload_id, False).abort()
            await sidecar.remove()
        finally:
            if locked:
                await sidecar.unlock()

    async def close(self) -> None:
        """Stop sending (the state stays: the next process carries on)."""
        for runner in list(self._runners.values()):
            await runner.wait(cancel=True)
        self.hashes.close()


class _Runner:
    """Sends one session's committed parts in the background while it holds the lock."""

    def __init__(self, owner: EarlyParts, session_id: str) -> None:
        self.owner = owner
        self.session_id = session_id
        self.committed = 0
        self.closing = False
        self._checksums: bool | None = None
        self._wake = asyncio.Event()
        self._saving = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name=f"s3-early-parts-{session_id}")

    def raise_to(self, committed: int) -> None:
        if committed > self.committed:
            self.committed = committed
            self._wake.set()

    async def wait(self, *, cancel: bool = False) -> None:
        if cancel:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        sidecar = Sidecar(self.owner.staging.path(self.session_id))
        try:
            if await sidecar.lock(1.0):
                try:
                    await self._send(sidecar)
                finally:
                    await sidecar.unlock()
        except Exception as e:  # best effort: publishing sends what is missing
            log.warning("upload %s: parts stopped going to S3 early: %s", self.session_id, e)
        finally:
            self.closing = True
            self.owner._forget(self)

    async def _send(self, sidecar: Sidecar) -> None:
        owner = self.owner
        size = owner.part_size
        state = await sidecar.load()
        window = Window(owner.concurrency)
        number = 1
        try:
            while True:
                while number <= self.committed // size:
                    if state is None:
                        state = await self._begin(sidecar)
                        if state is None:
                            return
                    if (state.part_size, state.checksums) != (size, owner.conn.sha256):
                        return  # made under other settings: publishing sorts it out
                    if number not in state.parts:
                        await window.submit(partial(self._part, sidecar, state, number))
                    number += 1
                if state is not None and await self._hashed():  # the final bytes, in order
                    path = owner.staging.path(self.session_id)
                    owner.hashes.advance(self.session_id, path, state.upload_id, self.committed)
                if window.idle and number > self.committed // size:
                    self.closing = True
                    return
                self._wake.clear()
                await window.wait_any(self._wake)
        except BaseException:
            await window.cancel()
            raise

    async def _hashed(self) -> bool:
        """Whether the session's object gets checksums (asked once per runner)."""
        if self._checksums is None:
            target = await self.owner.target(self.session_id)
            self._checksums = target is not None and target.checksums
        return self._checksums

    async def _begin(self, sidecar: Sidecar) -> State | None:
        target = await self.owner.target(self.session_id)
        if target is None:
            return None
        key, content_type = target.key, target.content_type
        extra = {"ContentType": content_type} if content_type else {}
        upload = await MultipartUpload.create(self.owner.conn, key, extra)
        state = State(key, upload.upload_id, self.owner.part_size, upload.checksums, content_type)
        try:
            await sidecar.save(state)
        except BaseException:
            await upload.abort()
            raise
        return state

    async def _part(self, sidecar: Sidecar, state: State, number: int) -> None:
        owner = self.owner
        staged = owner.staging.path(self.session_id)
        async with owner.slots:
            data, sha256 = await asyncio.to_thread(
                _pread, staged, (number - 1) * owner.part_size, owner.part_size
            )
            if len(data) != owner.part_size:
                raise RuntimeError(f"part {number} is not staged completely")
            upload = MultipartUpload(owner.conn, state.key, state.upload_id, state.checksums)
            part = await upload.send(number, data, sha256)
        async with self._saving:
            state.parts[number] = part
            await sidecar.save(state)
