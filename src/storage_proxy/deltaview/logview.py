"""Each caller's ``_delta_log/`` (``logMode: filtered``): entries rewritten for its rule set.

- Commits and compacted log files, classic checkpoints (single and multi-part) and
  ``_last_checkpoint`` are rewritten (``logrewrite``); checksum files (``.crc``) are hidden
  (NoSuchKey) and any other entry is denied: the caller's table has only what it may read.
- A caller whose rules allow the whole table (an empty map) reads the log as stored: ``lookup``
  returns None and the bytes, sizes and ETags are the backend's own.
- Rewritten entries are cached per (entry, stored ETag, rule set) — so per table version — and
  built once for every caller who shares the rule set (concurrent requests wait for one build).
  Their sizes and ETags (MD5 of the rewritten bytes) are kept apart from the bytes, so listings,
  HEAD and GET agree even after the bytes were evicted; the bytes cache is bounded.
- Building runs in worker threads, at most ``WORKERS`` at a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from . import logrewrite
from .config import TableLocation
from .deltalog import LOG
from .errors import S3Error, S3ErrorCode, access_denied
from .gate import TableView
from .logrewrite import Rewritten
from .objects import MetaCache
from .store import ListedObject, ObjectMeta, ObjectStore

WORKERS = 2
LIST_CONCURRENCY = 8
_COMMIT = re.compile(r"^\d{20}\.json$|^\d{20}\.\d{20}\.compacted\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")
_CRC = re.compile(r"^\d{20}\.crc$")
LAST_CHECKPOINT = "_last_checkpoint"


@dataclass(frozen=True)
class LogObject:
    body: bytes
    etag: str
    last_modified: datetime
    rewritten: Rewritten

    @property
    def size(self) -> int:
        return len(self.body)


def kind_of(name: str) -> str:
    """commit, checkpoint, last, crc or other: what the filtered log does with an entry."""
    if _COMMIT.match(name):
        return "commit"
    if _CHECKPOINT.match(name):
        return "checkpoint"
    if name == LAST_CHECKPOINT:
        return "last"
    return "crc" if _CRC.match(name) else "other"


class LogFilter:
    def __init__(
        self,
        store: ObjectStore,
        meta: MetaCache,
        mode: str,
        cache_bytes: int,
        observe_build: Callable[[float], None] | None = None,
        table_read: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._store, self._meta, self._mode = store, meta, mode
        #: awaited before rewriting a commit with removes: a remove without partition values
        #: takes its add's, which the table's snapshot knows
        self._table_read = table_read
        self._limit = cache_bytes
        self._bytes: OrderedDict[tuple[str, ...], LogObject] = OrderedDict()
        self._held = 0
        self._sizes: OrderedDict[tuple[str, ...], tuple[int, str]] = OrderedDict()
        self._building: dict[tuple[str, ...], asyncio.Future[LogObject]] = {}
        self._workers = asyncio.Semaphore(WORKERS)
        self._observe = observe_build or (lambda _s: None)
        self.builds = 0  # how many rewrites ran (tests: once per rule set)

    def applies(self, rel: str, view: TableView) -> bool:
        return self._mode == "filtered" and rel.startswith(LOG) and not view.whole

    async def lookup(
        self, alias: str, loc: TableLocation, rel: str, view: TableView
    ) -> LogObject | None:
        """The caller's version of a log entry; None to serve the stored object."""
        if not self.applies(rel, view):
            return None
        name = rel[len(LOG) :]
        kind = kind_of(name)
        if kind == "crc":
            raise S3Error(S3ErrorCode.NO_SUCH_KEY)
        if kind == "other":
            raise access_denied("log-entry")
        meta = await self._meta.get(self._store, loc, rel)
        return await self._object(alias, loc, rel, meta, view)

    async def listed(
        self, alias: str, loc: TableLocation, view: TableView, objs: list[tuple[str, ListedObject]]
    ) -> dict[str, tuple[int, str] | None]:
        """(size, ETag) of each listed log entry as this caller sees it; None: hidden."""
        out: dict[str, tuple[int, str] | None] = {}
        gate = asyncio.Semaphore(LIST_CONCURRENCY)

        async def one(rel: str, obj: ListedObject) -> None:
            if kind_of(rel[len(LOG) :]) in ("crc", "other"):
                out[rel] = None
                return
            meta = ObjectMeta(obj.size, obj.etag, obj.last_modified)
            known = self._sizes.get(self._key(alias, rel, meta, view))
            if known is not None:
                out[rel] = known
                return
            async with gate:
                got = await self._object(alias, loc, rel, meta, view)
            out[rel] = (got.size, got.etag)

        await asyncio.gather(*(one(rel, obj) for rel, obj in objs))
        return out

    @staticmethod
    def _key(alias: str, rel: str, meta: ObjectMeta, view: TableView) -> tuple[str, ...]:
        return (alias, rel, meta.etag, view.key)

    async def _object(
        self, alias: str, loc: TableLocation, rel: str, meta: ObjectMeta, view: TableView
    ) -> LogObject:
        key = self._key(alias, rel, meta, view)
        hit = self._bytes.get(key)
        if hit is not None:
            self._bytes.move_to_end(key)
            return hit
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._build(alias, loc, rel, meta, view))
            self._building[key] = pending
            pending.add_done_callback(lambda _f: self._building.pop(key, None))
        return await asyncio.shield(pending)

    async def _build(
        self, alias: str, loc: TableLocation, rel: str, meta: ObjectMeta, view: TableView
    ) -> LogObject:
        data = await self._store.get_bytes(loc.bucket, loc.prefix + rel)
        if data is None:
            raise S3Error(S3ErrorCode.NO_SUCH_KEY)
        name = rel[len(LOG) :]
        kind = kind_of(name)
        known = view.known.paths

        def part_of(path: str) -> dict[str, str | None] | None:
            return known.get(unquote(path))

        build: Callable[[], Rewritten]
        if kind == "commit" and b'"remove"' in data and self._table_read is not None:
            await self._table_read(alias)
        if kind == "commit":
            build = lambda: logrewrite.filter_commit(data, view.allows_values, part_of)  # noqa: E731
        elif kind == "checkpoint":
            build = lambda: logrewrite.filter_checkpoint(data, view.rules, part_of)  # noqa: E731
        else:
            parts = await self._checkpoint_parts(alias, loc, data, view)
            build = lambda: logrewrite.last_checkpoint(data, parts)  # noqa: E731
        rewritten = await self._run(build)
        obj = LogObject(
            rewritten.body,
            f'"{hashlib.md5(rewritten.body).hexdigest()}"',
            meta.last_modified,
            rewritten,
        )
        self._remember(self._key(alias, rel, meta, view), obj)
        return obj

    async def _checkpoint_parts(
        self, alias: str, loc: TableLocation, data: bytes, view: TableView
    ) -> list[Rewritten]:
        try:
            stored = json.loads(data)
            version, parts = int(stored["version"]), int(stored.get("parts") or 0)
        except (ValueError, KeyError, TypeError):
            raise access_denied("log-unreadable", "_last_checkpoint cannot be read.") from None
        if parts:
            names = [
                f"{version:020d}.checkpoint.{i:010d}.{parts:010d}.parquet"
                for i in range(1, parts + 1)
            ]
        else:
            names = [f"{version:020d}.checkpoint.parquet"]
        out = []
        for name in names:
            rel = LOG + name
            meta = await self._meta.get(self._store, loc, rel)
            out.append((await self._object(alias, loc, rel, meta, view)).rewritten)
        return out

    async def _run(self, build: Callable[[], Rewritten]) -> Rewritten:
        async with self._workers:
            start = time.perf_counter()
            try:
                return await asyncio.to_thread(build)
            except (ValueError, KeyError, TypeError, OSError) as e:
                raise access_denied("log-unreadable", "A log entry cannot be read.") from e
            finally:
                self._observe(time.perf_counter() - start)

    def _remember(self, key: tuple[str, ...], obj: LogObject) -> None:
        self.builds += 1
        self._sizes[key] = (obj.size, obj.etag)
        if len(self._sizes) > 500_000:
            self._sizes.popitem(last=False)
        if obj.size > self._limit:
            return
        self._bytes[key] = obj
        self._held += obj.size
        while self._held > self._limit:
            _, old = self._bytes.popitem(last=False)
            self._held -= old.size
