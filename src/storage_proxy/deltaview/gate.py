"""The partition gate: which keys of a table a caller may read (or, read-only off, write).

Per table, the parsed log is cached and refreshed when the table's version advances: at most
every ``logCheckInterval`` seconds one LIST of ``_delta_log/`` after the cached version, and at
once (coalesced) when a key is not in the cached allowed set. Per (table, caller) the allowed-file
set is cached and rebuilt only when the table's version changes.
When in doubt, deny: files not in the current log, removed files, cdc and deletion-vector files
of denied partitions, an unreadable log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .auth import Authenticator, Principal
from .config import DeltaViewConfig, PartitionMap, TableLocation
from .deltalog import LOG, LogError, LogReader, Snapshot
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


@dataclass
class TableView:
    """What one caller may read of one table version."""

    version: int
    may_read_table: bool
    allowed: frozenset[str]

    def allows(self, rel: str) -> bool:
        if rel.startswith(LOG) or rel + "/" == LOG:
            return self.may_read_table
        return rel in self.allowed


@dataclass
class _Table:
    reader: LogReader
    snap: Snapshot | None = None
    checked: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def build_view(snap: Snapshot, rules: list[PartitionMap]) -> TableView:
    allowed: set[str] = set()
    if rules:
        for path, entry in snap.files.items():
            if any(matches(entry.partition_values, r) for r in rules):
                allowed.add(path)
                if entry.dv_path:
                    allowed.add(entry.dv_path)
        for path, values in snap.cdc.items():
            if any(matches(values, r) for r in rules):
                allowed.add(path)
    return TableView(snap.version, bool(rules), frozenset(allowed))


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
        view = build_view(snap, await self._auth.rules(principal, alias))
        if len(self._views) > 100_000:
            self._views.clear()
        self._views[key] = view
        return view

    async def authorize_read(self, alias: str, rel: str, principal: Principal) -> None:
        view = await self.view(alias, principal)
        if view.allows(rel):
            return
        if not rel.startswith(LOG):
            view = await self.view(alias, principal, force=True)
            if view.allows(rel):
                return
        raise access_denied("partition" if view.may_read_table else "table")

    async def authorize_write(self, alias: str, rel: str, principal: Principal) -> None:
        rules = await self._auth.rules(principal, alias)
        if rel.startswith(LOG) and rules:
            return
        if not rel.startswith(LOG) and any(matches(hive_values(rel), r) for r in rules):
            return
        raise access_denied("write-partition")
