"""The partition gate: which keys of a table a caller may read (or, read-only off, write).

Per table, the parsed log is cached and refreshed when the table's version advances: at most
every ``logCheckInterval`` seconds one LIST of ``_delta_log/`` after the cached version, and at
once (coalesced) when a key is not in the cached allowed set. Per (table, caller) the allowed-file
set is cached and rebuilt only when the table's version changes.
When in doubt, deny: files not in the current log, removed files, cdc and deletion-vector files
of denied partitions, an unreadable log. Files that later versions removed stay readable in
allowed partitions, so time travel works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .auth import Authenticator, Principal
from .config import DeltaViewConfig, PartitionMap, TableLocation
from .deltalog import LOG, Known, LogError, LogReader, Snapshot
from .errors import S3Error, access_denied
from .store import ObjectStore

log = logging.getLogger("storage_proxy.deltaview.gate")
FORCE_RECHECK_AFTER = 0.05  # seconds: a miss triggers a log check at most this often per table


def matches(values: Mapping[str, str | None], rule: PartitionMap) -> bool:
    """A file matches a rule when every column the rule names has one of the allowed values."""
    return all(values.get(col) in allowed for col, allowed in rule.items())


def hive_values(rel: str) -> dict[str, str | None]:
    """Partition values from ``col=value/`` directories: only for writes of not-yet-logged files."""
    from urllib.parse import unquote

    out: dict[str, str | None] = {}
    for seg in rel.split("/")[:-1]:
        col, sep, value = seg.partition("=")
        if sep:
            out[unquote(col)] = unquote(value)
    return out


def rules_key(rules: list[PartitionMap]) -> str:
    """One stable name per rule set: callers who share it share rewritten log files."""
    canon = sorted({json.dumps({c: sorted(v) for c, v in sorted(r.items())}) for r in rules})
    return "[" + ",".join(canon) + "]"


@dataclass
class TableView:
    """What one caller may read of one table version. A data, deletion-vector or change-data
    file is readable when some version's log names it in a partition the rules allow (time
    travel reads files that later versions removed); the log when any rule exists."""

    version: int
    rules: tuple[PartitionMap, ...]
    known: Known
    key: str = ""

    @property
    def may_read_table(self) -> bool:
        return bool(self.rules)

    @property
    def whole(self) -> bool:
        """An empty map allows every file of every version: the log is served as stored."""
        return any(not r for r in self.rules)

    def allows_values(self, values: Mapping[str, str | None]) -> bool:
        return any(matches(values, r) for r in self.rules)

    def allows(self, rel: str) -> bool:
        if rel.startswith(LOG) or rel + "/" == LOG:
            return self.may_read_table
        values = self.known.paths.get(rel)
        return values is not None and self.allows_values(values)


@dataclass
class _Table:
    reader: LogReader
    snap: Snapshot | None = None
    checked: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    prefetch: asyncio.Future[None] | None = None


def build_view(snap: Snapshot, rules: list[PartitionMap], known: Known) -> TableView:
    return TableView(snap.version, tuple(rules), known, rules_key(rules))


class Gate:
    def __init__(
        self,
        cfg: DeltaViewConfig,
        store: ObjectStore,
        auth: Authenticator,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._auth = auth
        self._clock = clock
        self._tables = {a: _Table(LogReader(store, loc)) for a, loc in cfg.table_mapping.items()}
        self._views: dict[tuple[str, str], TableView] = {}

    def tables(self) -> dict[str, TableLocation]:
        return self._cfg.table_mapping

    async def snapshot(self, alias: str, force: bool = False) -> Snapshot:
        t = self._tables[alias]
        started = self._clock()
        fresh = started - t.checked < (
            FORCE_RECHECK_AFTER if force else self._cfg.log_check_interval
        )
        if t.snap is not None and fresh:
            return t.snap
        async with t.lock:
            if t.snap is not None and t.checked >= started:
                return t.snap  # someone refreshed while we waited
            try:
                if t.snap is None:
                    t.snap = await t.reader.load()
                elif (newer := await t.reader.refresh(t.snap)) is not None:
                    t.snap = newer
                t.checked = self._clock()
            except (LogError, S3Error, ValueError, KeyError, TypeError) as e:
                t.snap, t.checked = None, float("-inf")
                log.warning("table %s: cannot read the Delta log: %s", alias, e)
                raise access_denied("log-unreadable", "The table's log cannot be read.") from e
            return t.snap

    async def view(self, alias: str, principal: Principal, force: bool = False) -> TableView:
        snap = await self.snapshot(alias, force)
        key = (alias, principal.user)
        cached = self._views.get(key)
        if cached is not None and cached.version == snap.version:
            return cached
        view = build_view(
            snap, await self._auth.rules(principal, alias), self._tables[alias].reader.known
        )
        if len(self._views) > 100_000:
            self._views.clear()
        self._views[key] = view
        return view

    def reader(self, alias: str) -> LogReader:
        return self._tables[alias].reader

    async def log_view(self, alias: str, principal: Principal) -> TableView:
        """The caller's view for reading the log itself: its rules are all it takes, so a
        reader's first request (``_last_checkpoint``) does not wait for the snapshot, which
        loads meanwhile in the background for the data files that follow."""
        t = self._tables[alias]
        rules = await self._auth.rules(principal, alias)
        if t.snap is None and t.prefetch is None and rules:
            t.prefetch = asyncio.ensure_future(self._prefetch(alias))
        version = t.snap.version if t.snap is not None else -1
        return TableView(version, tuple(rules), t.reader.known, rules_key(rules))

    async def close(self) -> None:
        """Stop background snapshot loads (the app is shutting down)."""
        pending = [t.prefetch for t in self._tables.values() if t.prefetch is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _prefetch(self, alias: str) -> None:
        try:
            await self.snapshot(alias)
        except S3Error:
            pass  # logged by snapshot(); the next request tries again
        finally:
            self._tables[alias].prefetch = None

    async def authorize_read(self, alias: str, rel: str, principal: Principal) -> TableView:
        """The caller's view of the table when it may read ``rel``; AccessDenied otherwise. A
        miss checks the log at once, then (once per table) the commits a checkpoint summed up."""
        if rel.startswith(LOG):
            view = await self.log_view(alias, principal)
            if view.may_read_table:
                return view
            raise access_denied("table")
        view = await self.view(alias, principal)
        if view.allows(rel):
            return view
        if not rel.startswith(LOG) and view.may_read_table:
            view = await self.view(alias, principal, force=True)
            if view.allows(rel):
                return view
            t = self._tables[alias]
            if not t.reader.known.complete and t.snap is not None:
                async with t.lock:
                    try:
                        await t.reader.backfill(t.snap.checkpoint)
                    except (LogError, S3Error, ValueError, KeyError, TypeError) as e:
                        log.warning("table %s: cannot read old commits: %s", alias, e)
                if view.allows(rel):
                    return view
        raise access_denied("partition" if view.may_read_table else "table")

    async def authorize_write(self, alias: str, rel: str, principal: Principal) -> None:
        rules = await self._auth.rules(principal, alias)
        if rel.startswith(LOG) and rules:
            return
        if not rel.startswith(LOG) and any(matches(hive_values(rel), r) for r in rules):
            return
        raise access_denied("write-partition")
