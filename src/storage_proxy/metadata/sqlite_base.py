"""The machinery of the embedded metadata store (:mod:`.sqlite`): the schema, the two
connections, and short write transactions that never upgrade a stale read snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..core.errors import BackendUnavailable
from ..infra.epoch import Epoch

BUSY_TIMEOUT = 10.0  # seconds a statement waits for another connection's lock
TX_ATTEMPTS = 3  # a transaction that met "database is locked" is tried this many times
WAL_ATTEMPTS = 50  # a switch to WAL another process raced (about 13 s of waits in all)
T = TypeVar("T")


class MetadataBusy(BackendUnavailable):
    code, title = "metadata-busy", "The metadata store is busy"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_scopes (
    volume TEXT NOT NULL,
    qsid TEXT NOT NULL,
    limit_bytes INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (volume, qsid)
);
CREATE TABLE IF NOT EXISTS vfolders (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    quota_scope TEXT NOT NULL,
    created_at REAL NOT NULL,
    owner TEXT,
    kind TEXT NOT NULL DEFAULT 'user',
    limit_bytes INTEGER,
    PRIMARY KEY (volume, vfid)
);
CREATE TABLE IF NOT EXISTS vfolder_acl (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    principal TEXT NOT NULL,
    permission INTEGER NOT NULL,
    PRIMARY KEY (volume, vfid, principal_type, principal)
);
CREATE TABLE IF NOT EXISTS upload_sessions (
    id TEXT PRIMARY KEY,
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    relpath TEXT NOT NULL,
    length INTEGER,
    "offset" INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS upload_sessions_vfid ON upload_sessions (volume, vfid);
CREATE TABLE IF NOT EXISTS file_meta (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    relpath TEXT NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (volume, vfid, relpath)
);
CREATE TABLE IF NOT EXISTS bgtasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    current REAL NOT NULL DEFAULT 0,
    total REAL,
    message TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    finished_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS bgtasks_kind ON bgtasks (kind, created_at);
CREATE TABLE IF NOT EXISTS job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vfolder_status (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    status TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (volume, vfid)
);
CREATE TABLE IF NOT EXISTS quota_ledger (
    id TEXT NOT NULL,
    volume TEXT NOT NULL,
    bucket TEXT NOT NULL,
    kind TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    holder TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (id, bucket)
);
CREATE INDEX IF NOT EXISTS quota_ledger_bucket ON quota_ledger (volume, bucket, kind, at);
CREATE INDEX IF NOT EXISTS quota_ledger_holder ON quota_ledger (holder, kind);
CREATE TABLE IF NOT EXISTS vfolder_retention (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    days REAL NOT NULL,
    PRIMARY KEY (volume, vfid)
);
CREATE TABLE IF NOT EXISTS vfolder_versions (
    volume TEXT NOT NULL,
    vfid TEXT NOT NULL,
    keep INTEGER NOT NULL,
    PRIMARY KEY (volume, vfid)
);
CREATE TABLE IF NOT EXISTS snapshot_policies (
    volume TEXT NOT NULL,
    target TEXT NOT NULL,
    every INTEGER NOT NULL,
    keep_last INTEGER NOT NULL,
    keep_daily INTEGER NOT NULL,
    PRIMARY KEY (volume, target)
);
"""


async def rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # nothing was open (BEGIN itself failed)


async def fetch_rows(db: aiosqlite.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """Run a query and fetch every row in one step on the connection's thread.

    Never a cursor left open between awaits: statements open at once on one connection share
    one read transaction, so a query started while another coroutine's cursor is still open
    would read that older snapshot (a session created a moment ago on another worker, unseen).
    """
    return list(await db.execute_fetchall(sql, args))


async def scalar(db: aiosqlite.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    rows = await fetch_rows(db, sql, args)
    return rows[0][0] if rows else None


async def _into_wal(db: aiosqlite.Connection) -> None:
    """Switch a database to WAL (once: it stays so).  Two processes opening a new database
    together may both ask: SQLite then answers one of them "locked" at once, whatever the busy
    timeout (waiting could deadlock), so that one looks again, briefly, until it is done."""
    for attempt in range(WAL_ATTEMPTS):
        mode = await scalar(db, "PRAGMA journal_mode", ())
        if str(mode).lower() == "wal":
            return
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == WAL_ATTEMPTS - 1:
                raise
        await asyncio.sleep(0.01 * (attempt + 1))


class SqliteBase:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._epoch = Epoch(None)  # the node's change counter, once open
        # (kind, volume, vfid) -> (counter when loaded, until when, value): see SqliteMetadataStore
        self._copies: dict[tuple[str, str, str], tuple[int, float, Any]] = {}

    @property
    def db(self) -> aiosqlite.Connection:
        """The read connection."""
        if self._reader is None:
            raise RuntimeError("metadata store is not open")
        return self._reader

    async def _connect(self) -> aiosqlite.Connection:
        # The busy timeout comes first: worker processes open one database at the same moment,
        # and switching it to WAL needs a lock another worker may hold for a few milliseconds.
        db = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            await _into_wal(db)
            # WAL + NORMAL: a commit survives a daemon crash; only a power loss may lose the last.
            await db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            await db.close()  # (its thread would keep the process from ever exiting)
            raise
        return db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        self._epoch = Epoch(None if self.path == ":memory:" else self.path + ".epoch")
        async with self._write_lock:  # idempotent statements, each its own transaction
            await self._writer.executescript(_SCHEMA)
        # An in-memory database exists once per connection: reads then share the writer's.
        self._reader = self._writer if self.path == ":memory:" else await self._connect()

    async def close(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        self._epoch.close()
        for db in {id(c): c for c in (reader, writer) if c is not None}.values():
            await db.close()

    async def _transaction(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on
        error); retried when another process kept the database locked past the busy timeout."""
        if self._writer is None:
            raise RuntimeError("metadata store is not open")
        db = self._writer
        async with self._write_lock:
            for attempt in range(1, TX_ATTEMPTS + 1):
                try:
                    await db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    if "locked" in str(e) or "busy" in str(e):
                        if attempt < TX_ATTEMPTS:
                            continue
                        raise MetadataBusy("the metadata store stayed locked; retry") from None
                    raise
                except BaseException:
                    # cancelled while waiting: the connection's thread may still run the BEGIN,
                    # and the next transaction would find it open ("within a transaction")
                    await asyncio.shield(rollback(db))
                    raise
                try:
                    result = await work(db)
                    await db.execute("COMMIT")
                    return result
                except BaseException:
                    await asyncio.shield(rollback(db))
                    raise
        raise AssertionError("unreachable")

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        async def run(db: aiosqlite.Connection) -> int:
            cur = await db.execute(sql, args)
            return int(cur.rowcount)

        return await self._transaction(run)

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        rows = await fetch_rows(self.db, sql, args)
        return rows[0] if rows else None

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return await fetch_rows(self.db, sql, args)
