"""The embedded metadata store: SQLite through aiosqlite, WAL mode, shared by worker processes.

Two connections per process, each in autocommit mode and on a thread of its own: one for reads
(every statement sees the latest commit; a read never holds a transaction open), one for writes.
Writes run one at a time per process (an asyncio lock) in short explicit transactions that take
the write lock up front (``BEGIN IMMEDIATE``, waiting up to the busy timeout for another
process), so a write never has to upgrade a stale read snapshot — the failure that once left a
connection stuck in an open transaction.  A transaction that still cannot get the lock is retried
a few times and then reported as a 503 (``metadata-busy``), never as a 500; a failed one is
rolled back, so the connection is always clean for the next.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..core.errors import BackendUnavailable
from ..core.records import (
    AclEntry,
    BgTaskRecord,
    Permission,
    QuotaBucket,
    Shortfall,
    UploadSession,
    VFolderRecord,
)
from .store import MetadataStore

BUSY_TIMEOUT = 10.0  # seconds a statement waits for another connection's lock
TX_ATTEMPTS = 3  # a transaction that met "database is locked" is tried this many times
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
"""

_UPLOAD_COLUMNS = (
    'id, volume, vfid, relpath, length, "offset", created_at, expires_at, owner, metadata'
)
_VFOLDER_COLUMNS = "volume, vfid, quota_scope, created_at, owner, kind, limit_bytes"
_BGTASK_COLUMNS = (
    "id, kind, status, owner, created_at, updated_at, current, total, message, params, result,"
    " error, finished_at, cancel_requested"
)
_BGTASK_JSON = frozenset({"params", "result", "error"})
_LIVE = "('pending', 'running')"


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # nothing was open (BEGIN itself failed)


async def _rows(db: aiosqlite.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """Run a query and fetch every row in one step on the connection's thread.

    Never a cursor left open between awaits: statements open at once on one connection share
    one read transaction, so a query started while another coroutine's cursor is still open
    would read that older snapshot (a session created a moment ago on another worker, unseen).
    """
    return list(await db.execute_fetchall(sql, args))


async def _scalar(db: aiosqlite.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    rows = await _rows(db, sql, args)
    return rows[0][0] if rows else None


async def _held(db: aiosqlite.Connection, volume: str, bucket: QuotaBucket, now: float) -> int:
    ledger = await _scalar(db, _HELD, (volume, bucket.key, now, bucket.scanned_at))
    prefix = bucket.upload_prefix
    uploads = await _scalar(db, _UPLOADS_HELD, (volume, len(prefix), prefix))
    return int(ledger) + int(uploads)


async def _shortfall(
    db: aiosqlite.Connection,
    volume: str,
    buckets: Sequence[QuotaBucket],
    nbytes: int,
    now: float,
) -> Shortfall | None:
    for bucket in buckets:
        remaining = max(0, bucket.limit - bucket.used - await _held(db, volume, bucket, now))
        if nbytes > remaining:
            return Shortfall(bucket.key, remaining)
    return None


def _bgtask(row: Any) -> BgTaskRecord:
    values = dict(zip(_BGTASK_COLUMNS.replace(" ", "").split(","), row, strict=True))
    for key in _BGTASK_JSON:
        values[key] = None if values[key] is None else json.loads(values[key])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return BgTaskRecord(**values)


def _upload(row: Any) -> UploadSession:
    sid, volume, vfid, relpath, length, offset, created, expires, owner, meta = row
    return UploadSession(
        sid, volume, vfid, relpath, length, offset, created, expires, owner, json.loads(meta)
    )


_HELD = (
    "SELECT COALESCE(SUM(bytes), 0) FROM quota_ledger WHERE volume = ? AND bucket = ? AND"
    " ((kind = 'held' AND expires_at > ?) OR (kind = 'written' AND at >= ?))"
)
_UPLOADS_HELD = (
    # Staged bytes sit outside the vfolder, so a session holds its whole declared length
    # (or, while the length is deferred, what it has staged so far).
    'SELECT COALESCE(SUM(COALESCE(length, "offset")), 0) FROM upload_sessions'
    " WHERE volume = ? AND substr(vfid, 1, ?) = ?"
)


class SqliteMetadataStore(MetadataStore):
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

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
        await db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        mode = await _scalar(db, "PRAGMA journal_mode", ())
        if str(mode).lower() != "wal":  # switching needs a lock: only once
            await db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a daemon crash; only a power loss may lose the last one.
        await db.execute("PRAGMA synchronous=NORMAL")
        return db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        async with self._write_lock:  # idempotent statements, each its own transaction
            await self._writer.executescript(_SCHEMA)
        # An in-memory database exists once per connection: reads then share the writer's.
        self._reader = self._writer if self.path == ":memory:" else await self._connect()

    async def close(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
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
                try:
                    result = await work(db)
                    await db.execute("COMMIT")
                    return result
                except BaseException:
                    await asyncio.shield(_rollback(db))
                    raise
        raise AssertionError("unreachable")

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        async def run(db: aiosqlite.Connection) -> int:
            cur = await db.execute(sql, args)
            return int(cur.rowcount)

        return await self._transaction(run)

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        rows = await _rows(self.db, sql, args)
        return rows[0] if rows else None

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return await _rows(self.db, sql, args)

    # -- quota scopes ------------------------------------------------------------------------
    async def get_quota_limit(self, volume: str, qsid: str) -> int | None:
        row = await self._one(
            "SELECT limit_bytes FROM quota_scopes WHERE volume = ? AND qsid = ?", (volume, qsid)
        )
        return None if row is None else row[0]

    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None:
        await self._write(
            "INSERT INTO quota_scopes (volume, qsid, limit_bytes, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (volume, qsid) DO UPDATE SET"
            " limit_bytes = excluded.limit_bytes, updated_at = excluded.updated_at",
            (volume, qsid, limit_bytes, time.time()),
        )

    async def delete_quota_scope(self, volume: str, qsid: str) -> None:
        await self._write("DELETE FROM quota_scopes WHERE volume = ? AND qsid = ?", (volume, qsid))

    # -- vfolders ----------------------------------------------------------------------------
    async def register_vfolder(
        self,
        volume: str,
        vfid: str,
        quota_scope: str,
        *,
        owner: str | None = None,
        kind: str = "user",
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO vfolders (volume, vfid, quota_scope, created_at, owner, kind)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (volume, vfid, quota_scope, time.time(), owner, kind),
        )

    async def unregister_vfolder(self, volume: str, vfid: str) -> None:
        async def run(db: aiosqlite.Connection) -> None:
            for table in ("vfolders", "vfolder_acl", "file_meta", "vfolder_retention"):
                await db.execute(
                    f"DELETE FROM {table} WHERE volume = ? AND vfid = ?", (volume, vfid)
                )

        await self._transaction(run)

    async def get_vfolder(self, volume: str, vfid: str) -> VFolderRecord | None:
        row = await self._one(
            f"SELECT {_VFOLDER_COLUMNS} FROM vfolders WHERE volume = ? AND vfid = ?", (volume, vfid)
        )
        return None if row is None else VFolderRecord(*row)

    async def list_vfolders(self, volume: str | None = None) -> list[VFolderRecord]:
        where, args = ("WHERE volume = ?", (volume,)) if volume is not None else ("", ())
        rows = await self._all(
            f"SELECT {_VFOLDER_COLUMNS} FROM vfolders {where} ORDER BY created_at", args
        )
        return [VFolderRecord(*row) for row in rows]

    async def update_vfolder(
        self,
        volume: str,
        vfid: str,
        *,
        owner: str | None = ...,  # type: ignore[assignment]
        kind: str | None = None,
        limit_bytes: int | None = ...,  # type: ignore[assignment]
    ) -> None:
        sets: list[str] = []
        args: list[Any] = []
        if owner is not ...:
            sets.append("owner = ?")
            args.append(owner)
        if kind is not None:
            sets.append("kind = ?")
            args.append(kind)
        if limit_bytes is not ...:
            sets.append("limit_bytes = ?")
            args.append(limit_bytes)
        if sets:
            await self._write(
                f"UPDATE vfolders SET {', '.join(sets)} WHERE volume = ? AND vfid = ?",
                (*args, volume, vfid),
            )

    async def get_acl(self, volume: str, vfid: str) -> list[AclEntry]:
        rows = await self._all(
            "SELECT principal_type, principal, permission FROM vfolder_acl"
            " WHERE volume = ? AND vfid = ? ORDER BY principal_type, principal",
            (volume, vfid),
        )
        return [AclEntry(t, p, Permission(perm)) for t, p, perm in rows]

    async def set_acl_entry(self, volume: str, vfid: str, entry: AclEntry) -> None:
        await self._write(
            "INSERT OR REPLACE INTO vfolder_acl VALUES (?, ?, ?, ?, ?)",
            (volume, vfid, entry.principal_type, entry.principal, int(entry.permission)),
        )

    async def replace_acl(
        self,
        volume: str,
        vfid: str,
        owner: str | None,
        kind: str,
        entries: Sequence[AclEntry],
    ) -> None:
        async def run(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE vfolders SET owner = ?, kind = ? WHERE volume = ? AND vfid = ?",
                (owner, kind, volume, vfid),
            )
            await db.execute(
                "DELETE FROM vfolder_acl WHERE volume = ? AND vfid = ?", (volume, vfid)
            )
            for e in entries:
                await db.execute(
                    "INSERT OR REPLACE INTO vfolder_acl VALUES (?, ?, ?, ?, ?)",
                    (volume, vfid, e.principal_type, e.principal, int(e.permission)),
                )

        await self._transaction(run)

    async def remove_acl_entry(
        self, volume: str, vfid: str, principal_type: str, principal: str
    ) -> bool:
        n = await self._write(
            "DELETE FROM vfolder_acl WHERE volume = ? AND vfid = ? AND principal_type = ?"
            " AND principal = ?",
            (volume, vfid, principal_type, principal),
        )
        return n > 0

    # -- uploads -----------------------------------------------------------------------------
    async def create_upload(
        self, session: UploadSession, buckets: Sequence[QuotaBucket] = (), now: float = 0.0
    ) -> Shortfall | None:
        row = (
            session.id,
            session.volume,
            session.vfid,
            session.relpath,
            session.length,
            session.offset,
            session.created_at,
            session.expires_at,
            session.owner,
            json.dumps(session.metadata),
        )

        async def run(db: aiosqlite.Connection) -> Shortfall | None:
            short = await _shortfall(db, session.volume, buckets, session.length or 0, now)
            if short is None:
                await db.execute(
                    f"INSERT INTO upload_sessions ({_UPLOAD_COLUMNS})"
                    f" VALUES ({', '.join('?' * 10)})",
                    row,
                )
            return short

        return await self._transaction(run)

    async def get_upload(self, upload_id: str) -> UploadSession | None:
        row = await self._one(
            f"SELECT {_UPLOAD_COLUMNS} FROM upload_sessions WHERE id = ?", (upload_id,)
        )
        return None if row is None else _upload(row)

    async def update_upload(
        self,
        upload_id: str,
        *,
        offset: int,
        length: int | None,
        buckets: Sequence[QuotaBucket] = (),
        now: float = 0.0,
    ) -> Shortfall | None:
        async def run(db: aiosqlite.Connection) -> Shortfall | None:
            if buckets and length is not None:
                found = await _rows(
                    db,
                    'SELECT volume, COALESCE(length, "offset") FROM upload_sessions WHERE id = ?',
                    (upload_id,),
                )
                row = found[0] if found else None
                if row is not None:
                    short = await _shortfall(db, row[0], buckets, length - int(row[1]), now)
                    if short is not None:
                        return short
            await db.execute(
                'UPDATE upload_sessions SET "offset" = ?, length = ? WHERE id = ?',
                (offset, length, upload_id),
            )
            return None

        return await self._transaction(run)

    async def delete_upload(self, upload_id: str) -> None:
        await self._write("DELETE FROM upload_sessions WHERE id = ?", (upload_id,))

    async def list_uploads(
        self, *, volume: str | None = None, expired_before: float | None = None
    ) -> list[UploadSession]:
        clauses: list[str] = []
        args: list[Any] = []
        if volume is not None:
            clauses.append("volume = ?")
            args.append(volume)
        if expired_before is not None:
            clauses.append("expires_at < ?")
            args.append(expired_before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._all(
            f"SELECT {_UPLOAD_COLUMNS} FROM upload_sessions {where} ORDER BY created_at",
            tuple(args),
        )
        return [_upload(row) for row in rows]

    async def reserved_upload_bytes(self, volume: str, vfid_prefix: str) -> int:
        row = await self._one(_UPLOADS_HELD, (volume, len(vfid_prefix), vfid_prefix))
        return int(row[0])

    # -- the quota ledger --------------------------------------------------------------------
    async def bucket_held(self, volume: str, bucket: QuotaBucket, now: float) -> int:
        return await _held(self.db, volume, bucket, now)

    async def reserve(
        self,
        volume: str,
        buckets: Sequence[QuotaBucket],
        holding: str,
        nbytes: int,
        holder: str,
        now: float,
        ttl: float,
    ) -> Shortfall | None:
        async def run(db: aiosqlite.Connection) -> Shortfall | None:
            short = await _shortfall(db, volume, buckets, nbytes, now)
            if short is not None:
                return short
            for bucket in buckets:
                await db.execute(
                    "INSERT INTO quota_ledger VALUES (?, ?, ?, 'held', ?, ?, ?, ?)"
                    " ON CONFLICT (id, bucket) DO UPDATE SET bytes = bytes + excluded.bytes,"
                    " at = excluded.at, expires_at = excluded.expires_at",
                    (holding, volume, bucket.key, nbytes, holder, now, now + ttl),
                )
            return None

        return await self._transaction(run)

    async def settle(self, volume: str, holding: str, written: int, now: float) -> None:
        async def run(db: aiosqlite.Connection) -> None:
            if written > 0:
                await db.execute(
                    "UPDATE quota_ledger SET kind = 'written', bytes = ?, at = ?, expires_at = ?"
                    " WHERE id = ? AND volume = ?",
                    (written, now, now, holding, volume),
                )
            else:
                await db.execute(
                    "DELETE FROM quota_ledger WHERE id = ? AND volume = ?", (holding, volume)
                )

        await self._transaction(run)

    async def record_written(
        self, volume: str, keys: Sequence[str], nbytes: int, now: float
    ) -> None:
        entry = uuid.uuid4().hex

        async def run(db: aiosqlite.Connection) -> None:
            for key in keys:
                await db.execute(
                    "INSERT INTO quota_ledger VALUES (?, ?, ?, 'written', ?, '', ?, ?)",
                    (entry, volume, key, nbytes, now, now),
                )

        if nbytes > 0 and keys:
            await self._transaction(run)

    async def renew_holdings(self, holder: str, now: float, ttl: float) -> None:
        await self._write(
            "UPDATE quota_ledger SET expires_at = ? WHERE holder = ? AND kind = 'held'",
            (now + ttl, holder),
        )

    async def ledger_holders(self, prefix: str) -> list[str]:
        rows = await self._all(
            "SELECT DISTINCT holder FROM quota_ledger WHERE kind = 'held'"
            " AND substr(holder, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return [str(r[0]) for r in rows]

    async def drop_holdings(self, holder: str) -> int:
        return await self._write(
            "DELETE FROM quota_ledger WHERE holder = ? AND kind = 'held'", (holder,)
        )

    async def prune_ledger(self, written_before: float, now: float) -> int:
        return await self._write(
            "DELETE FROM quota_ledger WHERE (kind = 'held' AND expires_at <= ?)"
            " OR (kind = 'written' AND at < ?)",
            (now, written_before),
        )

    # -- file metadata -----------------------------------------------------------------------
    async def get_file_meta(self, volume: str, vfid: str, relpath: str) -> dict[str, Any] | None:
        row = await self._one(
            "SELECT meta FROM file_meta WHERE volume = ? AND vfid = ? AND relpath = ?",
            (volume, vfid, relpath),
        )
        return None if row is None else dict(json.loads(row[0]))

    async def put_file_meta(
        self, volume: str, vfid: str, relpath: str, meta: dict[str, Any]
    ) -> None:
        await self._write(
            "INSERT OR REPLACE INTO file_meta VALUES (?, ?, ?, ?)",
            (volume, vfid, relpath, json.dumps(meta)),
        )

    async def delete_file_meta(self, volume: str, vfid: str, relpath: str) -> None:
        await self._write(
            "DELETE FROM file_meta WHERE volume = ? AND vfid = ? AND relpath = ?",
            (volume, vfid, relpath),
        )

    # -- background tasks --------------------------------------------------------------------
    async def create_bgtask(self, record: BgTaskRecord) -> None:
        values = [getattr(record, c) for c in _BGTASK_COLUMNS.replace(" ", "").split(",")]
        values[9:12] = [None if v is None else json.dumps(v) for v in values[9:12]]
        await self._write(
            f"INSERT INTO bgtasks ({_BGTASK_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            tuple(values),
        )

    async def update_bgtask(
        self, task_id: str, fields: dict[str, Any], *, only_if_live: bool = False
    ) -> bool:
        names = list(fields)
        if not set(names) <= set(_BGTASK_COLUMNS.replace(" ", "").split(",")) - {"id"}:
            raise ValueError(f"unknown bgtask fields: {names}")
        args = [json.dumps(fields[n]) if n in _BGTASK_JSON else fields[n] for n in names]
        live = f" AND status IN {_LIVE}" if only_if_live else ""
        sets = ", ".join(f"{n} = ?" for n in names)
        n = await self._write(f"UPDATE bgtasks SET {sets} WHERE id = ?{live}", (*args, task_id))
        return n > 0

    async def get_bgtask(self, task_id: str) -> BgTaskRecord | None:
        row = await self._one(f"SELECT {_BGTASK_COLUMNS} FROM bgtasks WHERE id = ?", (task_id,))
        return None if row is None else _bgtask(row)

    async def delete_bgtask(self, task_id: str) -> None:
        await self._write("DELETE FROM bgtasks WHERE id = ?", (task_id,))

    async def list_bgtasks(
        self,
        *,
        kind: str | None = None,
        statuses: tuple[str, ...] = (),
        owner: str | None = None,
        limit: int = 100,
    ) -> list[BgTaskRecord]:
        clauses, args = [], []  # type: ignore[var-annotated]
        for column, value in (("kind", kind), ("owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if statuses:
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._all(
            f"SELECT {_BGTASK_COLUMNS} FROM bgtasks {where} ORDER BY created_at DESC LIMIT ?",
            (*args, limit),
        )
        return [_bgtask(row) for row in rows]

    # -- job leases: one statement each, so workers sharing the file never both win ----------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        async def run(db: aiosqlite.Connection) -> bool:
            await db.execute(
                "INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE job_leases.expires_at < ? OR job_leases.holder = excluded.holder",
                (name, holder, now + ttl, now),
            )
            return (
                await _scalar(db, "SELECT holder FROM job_leases WHERE name = ?", (name,)) == holder
            )

        return await self._transaction(run)

    async def release_lease(self, name: str, holder: str, keep_until: float | None) -> None:
        if keep_until is None:
            sql, args = "DELETE FROM job_leases WHERE name = ? AND holder = ?", (name, holder)
        else:
            sql = "UPDATE job_leases SET expires_at = ? WHERE name = ? AND holder = ?"
            args = (keep_until, name, holder)  # type: ignore[assignment]
        await self._write(sql, args)

    # -- busy vfolders: held only while their task is live ------------------------------------
    async def claim_vfolder_status(
        self, volume: str, vfid: str, status: str, task_id: str
    ) -> str | None:
        async def run(db: aiosqlite.Connection) -> str | None:
            await db.execute(
                "INSERT INTO vfolder_status (volume, vfid, status, task_id) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (volume, vfid) DO UPDATE SET status = excluded.status,"
                " task_id = excluded.task_id WHERE NOT EXISTS (SELECT 1 FROM bgtasks b"
                f" WHERE b.id = vfolder_status.task_id AND b.status IN {_LIVE})",
                (volume, vfid, status, task_id),
            )
            found = await _rows(
                db,
                "SELECT status, task_id FROM vfolder_status WHERE volume = ? AND vfid = ?",
                (volume, vfid),
            )
            row = found[0] if found else None
            assert row is not None
            return None if row[1] == task_id else str(row[0])

        return await self._transaction(run)

    async def release_vfolder_status(self, task_id: str) -> None:
        await self._write("DELETE FROM vfolder_status WHERE task_id = ?", (task_id,))

    async def get_vfolder_status(self, volume: str, vfid: str) -> tuple[str, str] | None:
        row = await self._one(
            "SELECT s.status, s.task_id FROM vfolder_status s JOIN bgtasks b ON b.id = s.task_id"
            f" WHERE s.volume = ? AND s.vfid = ? AND b.status IN {_LIVE}",
            (volume, vfid),
        )
        return None if row is None else (str(row[0]), str(row[1]))

    async def set_vfolder_retention(self, volume: str, vfid: str, days: float | None) -> None:
        if days is None:
            sql = "DELETE FROM vfolder_retention WHERE volume = ? AND vfid = ?"
            await self._write(sql, (volume, vfid))
        else:
            await self._write(
                "INSERT OR REPLACE INTO vfolder_retention VALUES (?, ?, ?)", (volume, vfid, days)
            )

    async def get_vfolder_retention(self, volume: str) -> dict[str, float]:
        rows = await self._all(
            "SELECT vfid, days FROM vfolder_retention WHERE volume = ?", (volume,)
        )
        return {str(vfid): float(days) for vfid, days in rows}
