"""Many files in one request: each is stored as a single upload of it would be.

A batch is a stream of items (the parts of a multipart form, the members of a tar stream),
read one after the other. Each item goes through :meth:`FileService.write` -- the caller's
right, the path check beneath the vfolder root, the quota, the audit line -- so a name that is
refused alone (``..``, an absolute path, a symbolic link on the way) is refused here too, for
that item only: its bytes are skipped and the batch goes on. Items that are not files or
directories (links, devices) are never created. The result lists every item in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import IncompleteBody, InvalidParameter, StorageProxyError
from ..core.files import WholeFile, WriteOptions
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.types import FileMeta, VFolderID
from .access import Actor
from .bgtasks import BackgroundTaskService, BgTaskEnded, ProgressReporter, TaskFunc
from .files import FileService
from .gate import Gate
from .tarstream import ReadExactly, TarStream

#: Items one batch may hold (its result is one JSON document).
MAX_BATCH_ITEMS = 100_000
#: Files up to this size are read whole and stored in groups while the next ones are read ...
SMALL_ITEM = 1 << 20
#: ... a group being this many files or bytes (larger files are streamed one after the other).
GROUP_FILES = 256
GROUP_BYTES = 4 << 20
#: A group that has waited this long for more files is stored as it is (a slow sender's files
#: are stored, and its progress told, as they come).  One group is written at a time: two at
#: once measured no faster (6,705 against 6,978 files/s), the thread's system calls being the
#: bound.
GROUP_SECONDS = 0.1


@dataclass(slots=True)
class BatchItem:
    """One item of a batch: a file (``body``) or a directory (``body`` None)."""

    name: str
    body: AsyncIterator[bytes] | None
    content_type: str | None = None
    size: int | None = None
    refused: StorageProxyError | None = None  # refused by the reader (a link, a device)


@dataclass(slots=True)
class BatchResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0
    failed: int = 0
    aborted: StorageProxyError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "failed": self.failed,
            "aborted": None if self.aborted is None else _problem(self.aborted),
            "results": self.items,
        }


def _problem(e: StorageProxyError) -> dict[str, Any]:
    return {"code": e.code, "status": e.status, "detail": str(e)}


#: Told each item's outcome as soon as it is known (in the order the writes finish).
Tally = Callable[[dict[str, Any]], Awaitable[None]]


class Progress:
    """A batch's progress as a background task's: files done (of those the client announced),
    and in the message files failed and bytes stored."""

    def __init__(self, reporter: ProgressReporter, expected_files: int | None) -> None:
        self._reporter, self._expected = reporter, expected_files
        self.files = self.failed = self.bytes = 0

    async def tally(self, out: dict[str, Any]) -> None:
        self.files += 1
        self.failed += "error" in out
        self.bytes += int(out.get("size") or 0)
        await self._reporter.update(self.files, self._expected, self.message())

    def message(self) -> str:
        return f"{self.files} files done ({self.failed} failed), {self.bytes} bytes stored"

    def summary(self, result: BatchResult) -> dict[str, Any]:
        aborted = None if result.aborted is None else _problem(result.aborted)
        return {
            "stored": result.stored,
            "failed": result.failed,
            "bytes": self.bytes,
            "aborted": aborted,
        }


@dataclass(slots=True)
class Track:
    """Run a batch as a background task: ``started`` hears its id before the body is read."""

    started: Callable[[str], Awaitable[None]]
    expected_files: int | None = None
    results: dict[str, BatchResult] = field(default_factory=dict)


class BatchService:
    def __init__(
        self, gate: Gate, files: FileService, bgtasks: BackgroundTaskService | None = None
    ) -> None:
        self._gate = gate
        self._files = files
        self._bgtasks = bgtasks

    async def _tracked(
        self, target: tuple[str, VFolderID, RelPath], track: Track, work: TaskFunc
    ) -> BatchResult:
        """``work`` (the batch) as a background task (kind ``batch-upload``); ``track.started``
        is told its id before the first item is read."""
        if self._bgtasks is None:
            raise RuntimeError("batch progress needs the background task service")
        volume, vfid, base = target
        params = {"volume": volume, "vfid": str(vfid), "path": str(base)}
        # A client that goes away fails the task's next read (what was stored is kept); a task
        # cancelled while it reads cuts the connection, as any upload cut short does.
        try:
            record = await self._bgtasks.run_watched(
                "batch-upload", work, track.started, params=params
            )
        except BgTaskEnded as e:  # cancelled between reads, or its runner stopped
            return BatchResult(aborted=e)
        return track.results.pop(record.id)

    async def upload(
        self,
        actor: Actor,
        volume: str,
        vfid: VFolderID,
        base: RelPath,
        items: AsyncIterator[BatchItem],
        *,
        overwrite: bool = True,
        tally: Tally | None = None,
        track: Track | None = None,
    ) -> BatchResult:
        """Store every item below ``base``; a malformed stream ends the batch (``aborted``)
        with what was stored before it kept. ``tally`` hears of each item once it is done.

        With ``track`` the batch runs as a background task whose progress — files done (of
        ``track.expected_files``), failed, bytes stored — its events carry."""
        # a caller without the right is refused before a byte of the body is read
        await self._gate.enter(actor, volume, vfid, Permission.RW, op="file.batch")
        if track is not None:

            async def work(reporter: ProgressReporter) -> dict[str, Any]:
                progress = Progress(reporter, track.expected_files)
                await reporter.update(0, track.expected_files, progress.message(), force=True)
                result = await self.upload(
                    actor, volume, vfid, base, items, overwrite=overwrite, tally=progress.tally
                )
                track.results[reporter.task_id] = result
                await reporter.update(message=progress.message(), force=True)
                return progress.summary(result)

            return await self._tracked((volume, vfid, base), track, work)
        result = BatchResult()
        slots: list[dict[str, Any] | None] = []

        async def store(files: list[WholeFile]) -> list[FileMeta | StorageProxyError]:
            return await self._files.write_whole(actor, volume, vfid, files)

        groups = _Groups(store, slots, tally)
        try:
            async for item in items:
                if len(slots) >= MAX_BATCH_ITEMS:
                    raise InvalidParameter(f"a batch holds at most {MAX_BATCH_ITEMS} items")
                slots.append(None)
                whole = await _whole(item)
                if whole is not None:
                    try:
                        rel = _below(base, item.name)
                    except StorageProxyError as e:
                        slots[-1] = await _told(tally, _failed({"name": item.name}, e))
                        continue
                    options = WriteOptions(
                        size_hint=len(whole),
                        checksums=True,
                        content_type=item.content_type,
                        overwrite=overwrite,
                    )
                    await groups.add(len(slots) - 1, item.name, WholeFile(rel, whole, options))
                    continue
                # a directory, a refused item or a large file: after every file before it,
                # and streamed while it is read
                await groups.drain()
                out = await self._one(actor, volume, vfid, base, item, overwrite)
                slots[-1] = await _told(tally, out)
            await groups.drain()
        except StorageProxyError as e:  # the stream broke: what was read whole is still stored
            result.aborted = e
            await groups.drain()
        finally:  # and if the request itself ends (cancelled), a group being written lands
            await groups.settle()
        result.items = [s for s in slots if s is not None]
        result.failed = sum(1 for s in result.items if "error" in s)
        result.stored = len(result.items) - result.failed
        return result

    async def _one(
        self,
        actor: Actor,
        volume: str,
        vfid: VFolderID,
        base: RelPath,
        item: BatchItem,
        overwrite: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"name": item.name}
        try:
            try:
                if item.refused is not None:
                    raise item.refused
                rel = _below(base, item.name)
                out["path"] = str(rel)
                if item.body is None:
                    (error,) = await self._files.mkdir(
                        actor, volume, vfid, [rel], parents=True, exist_ok=True
                    )
                    if error is not None:
                        raise error
                    out["type"] = "directory"
                    return out
                options = WriteOptions(
                    size_hint=item.size,
                    checksums=True,
                    content_type=item.content_type,
                    overwrite=overwrite,
                )
                meta = await self._files.write(actor, volume, vfid, rel, item.body, options)
                return _stored(out, meta)
            finally:
                if item.body is not None:
                    await _drain(item.body)  # what a refused item left unread
        except StorageProxyError as e:
            if isinstance(e, _STREAM_ERRORS):
                raise  # the stream itself is broken: nothing after this can be read
            return _failed(out, e)


class BrokenStream(InvalidParameter):
    """The batch's stream cannot be read on (a malformed form or tar, a body cut short)."""


_STREAM_ERRORS = (BrokenStream, IncompleteBody)


def _below(base: RelPath, name: str) -> RelPath:
    return RelPath.parse(f"{base}/{name}" if base.parts else name)


def _stored(out: dict[str, Any], meta: FileMeta) -> dict[str, Any]:
    out.update(type="file", size=meta.size)
    if meta.sha256:
        out["sha256"] = meta.sha256
    return out


def _failed(out: dict[str, Any], e: StorageProxyError) -> dict[str, Any]:
    out["error"] = _problem(e)
    return out


async def _told(tally: Tally | None, out: dict[str, Any]) -> dict[str, Any]:
    if tally is not None:
        await tally(out)
    return out


class _Groups:
    """Small files gathered into groups (``GROUP_FILES`` files, ``GROUP_BYTES`` bytes, or what
    came in ``GROUP_SECONDS``), each stored in one call while the next is read; one group is
    written at a time, in order, so of two files with the same name the later one lands last."""

    def __init__(
        self,
        store: Callable[[list[WholeFile]], Awaitable[list[FileMeta | StorageProxyError]]],
        slots: list[dict[str, Any] | None],
        tally: Tally | None,
    ) -> None:
        self._store, self._slots, self._tally = store, slots, tally
        self._pending: list[tuple[int, str, WholeFile]] = []
        self._bytes = 0
        self._since = 0.0  # when the pending group got its first file
        self._writing: asyncio.Task[None] | None = None

    async def add(self, slot: int, name: str, f: WholeFile) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append((slot, name, f))
        self._bytes += len(f.body)
        full = len(self._pending) >= GROUP_FILES or self._bytes >= GROUP_BYTES
        if full or time.monotonic() - self._since >= GROUP_SECONDS:
            await self._wait()
            self._writing = asyncio.create_task(self._write(self._take()))

    async def drain(self) -> None:
        """Every file added so far stored (or refused)."""
        await self._wait()
        if self._pending:
            await self._write(self._take())

    async def settle(self) -> None:
        """The group being written, if any, written (what is still pending is dropped)."""
        await self._wait()

    def _take(self) -> list[tuple[int, str, WholeFile]]:
        group, self._pending, self._bytes = self._pending, [], 0
        return group

    async def _wait(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:  # the batch is cut short: its group still lands
                await asyncio.wait([writing])
                raise

    async def _write(self, group: list[tuple[int, str, WholeFile]]) -> None:
        try:
            outcomes = await self._store([f for _, _, f in group])
        except StorageProxyError as e:  # refused as a whole (a right revoked, a vfolder busy):
            outcomes = [e] * len(group)  # each file's own refusal, as if sent alone
        for (slot, name, f), outcome in zip(group, outcomes, strict=True):
            out: dict[str, Any] = {"name": name, "path": str(f.relpath)}
            if isinstance(outcome, StorageProxyError):
                _failed(out, outcome)
            else:
                _stored(out, outcome)
            self._slots[slot] = await _told(self._tally, out)


async def _whole(item: BatchItem) -> bytes | None:
    """A file's content read whole when it is at most ``SMALL_ITEM`` bytes; None for anything
    else (a directory, a refused item, or a larger file -- then ``item.body`` still yields every
    byte, what was read ahead first)."""
    if item.body is None or item.refused is not None:
        return None
    if item.size is not None and item.size > SMALL_ITEM:
        return None
    pieces: list[bytes] = []
    held = 0
    body = item.body
    async for chunk in body:
        pieces.append(chunk)
        held += len(chunk)
        if held > SMALL_ITEM:
            item.body = _chain(pieces, body)
            return None
    return b"".join(pieces)


async def _chain(pieces: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
    async for chunk in rest:
        yield chunk


async def _drain(body: AsyncIterator[bytes]) -> None:
    async for _ in body:
        pass


async def tar_items(read_exactly: ReadExactly) -> AsyncIterator[BatchItem]:
    """The members of a tar stream as batch items (links and devices refused, not created)."""
    stream = TarStream(_broken_on_error(read_exactly))
    try:
        async for member in stream:
            if member.kind == "file":
                yield BatchItem(member.name, _stream_errors(stream.data()), size=member.size)
            elif member.kind == "directory":
                yield BatchItem(member.name, None)
            else:
                refused = InvalidParameter(f"a {member.kind} is not stored; send the file itself")
                yield BatchItem(member.name, None, refused=refused)
    except InvalidParameter as e:
        raise BrokenStream(str(e)) from None


def _broken_on_error(read_exactly: ReadExactly) -> ReadExactly:
    async def read(n: int) -> bytes:
        try:
            return await read_exactly(n)
        except InvalidParameter as e:
            raise BrokenStream(str(e)) from None

    return read


async def _stream_errors(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A member's bytes; the stream failing under them is a broken stream, not a bad item."""
    try:
        async for chunk in chunks:
            yield chunk
    except InvalidParameter as e:
        raise BrokenStream(str(e)) from None
