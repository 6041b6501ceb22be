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

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import aiosqlite

from ..core.records import (
    AclEntry,
    Permission,
    QuotaBucket,
    Shortfall,
    UploadSession,
    VFolderRecord,
)
from .sqlite_base import MetadataBusy, fetch_rows, scalar
from .sqlite_jobs import SqliteJobsMixin
from .store import MetadataStore

__all__ = ["MetadataBusy", "SqliteMetadataStore"]

#: Seconds a process copy of a vfolder record or ACL is served at most.
COPY_TTL = 30.0
MAX_COPIES = 100_000


_UPLOAD_COLUMNS = (
    'id, volume, vfid, relpath, length, "offset", created_at, expires_at, owner, metadata'
)
_VFOLDER_COLUMNS = "volume, vfid, quota_scope, created_at, owner, kind, limit_bytes"


async def _held(db: aiosqlite.Connection, volume: str, bucket: QuotaBucket, now: float) -> int:
    ledger = await scalar(db, _HELD, (volume, bucket.key, now, bucket.scanned_at))
    prefix = bucket.upload_prefix
    uploads = await scalar(db, _UPLOADS_HELD, (volume, len(prefix), prefix))
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


class SqliteMetadataStore(SqliteJobsMixin, MetadataStore):
    """The embedded store. What every request reads (vfolder records, ACLs) is kept in the
    process and served while the node's change counter (:mod:`.epoch`) has not moved -- every
    change made through any instance on the node moves it -- and for at most ``COPY_TTL``
    (a bound for changes made to the file behind the daemon's back)."""

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Around a write of vfolder records or ACLs: the counter moves once it has ended
        (committed or not: a spurious move only costs a reload)."""
        try:
            yield
        finally:
            self._epoch.bump()

    def _keep(self, key: tuple[str, str, str], epoch: int, value: Any) -> None:
        if len(self._copies) >= MAX_COPIES:
            self._copies.clear()
        self._copies[key] = (epoch, time.monotonic() + COPY_TTL, value)

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
        with self._changing():
            await self._write(
                "INSERT OR REPLACE INTO vfolders"
                " (volume, vfid, quota_scope, created_at, owner, kind) VALUES (?, ?, ?, ?, ?, ?)",
                (volume, vfid, quota_scope, time.time(), owner, kind),
            )

    async def unregister_vfolder(self, volume: str, vfid: str) -> None:
        async def run(db: aiosqlite.Connection) -> None:
            tables = (
                "vfolders",
                "vfolder_acl",
                "file_meta",
                "vfolder_retention",
                "vfolder_versions",
            )
            await db.execute(
                "DELETE FROM snapshot_policies WHERE volume = ? AND target = ?", (volume, vfid)
            )
            for table in tables:
                await db.execute(
                    f"DELETE FROM {table} WHERE volume = ? AND vfid = ?", (volume, vfid)
                )

        with self._changing():
            await self._transaction(run)

    async def get_vfolder(self, volume: str, vfid: str) -> VFolderRecord | None:
        key = ("vfolder", volume, vfid)
        found = self._copies.get(key)
        if found is not None and found[0] == self._epoch.read() and found[1] > time.monotonic():
            return found[2]  # type: ignore[no-any-return]
        epoch = self._epoch.read()
        row = await self._one(
            f"SELECT {_VFOLDER_COLUMNS} FROM vfolders WHERE volume = ? AND vfid = ?", (volume, vfid)
        )
        record = None if row is None else VFolderRecord(*row)
        self._keep(key, epoch, record)
        return record

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
            with self._changing():
                await self._write(
                    f"UPDATE vfolders SET {', '.join(sets)} WHERE volume = ? AND vfid = ?",
                    (*args, volume, vfid),
                )

    async def get_acl(self, volume: str, vfid: str) -> list[AclEntry]:
        key = ("acl", volume, vfid)
        found = self._copies.get(key)
        if found is not None and found[0] == self._epoch.read() and found[1] > time.monotonic():
            return list(found[2])
        epoch = self._epoch.read()
        rows = await self._all(
            "SELECT principal_type, principal, permission FROM vfolder_acl"
            " WHERE volume = ? AND vfid = ? ORDER BY principal_type, principal",
            (volume, vfid),
        )
        entries = [AclEntry(t, p, Permission(perm)) for t, p, perm in rows]
        self._keep(key, epoch, tuple(entries))
        return entries

    async def set_acl_entry(self, volume: str, vfid: str, entry: AclEntry) -> None:
        with self._changing():
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

        with self._changing():
            await self._transaction(run)

    async def remove_acl_entry(
        self, volume: str, vfid: str, principal_type: str, principal: str
    ) -> bool:
        with self._changing():
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
                found = await fetch_rows(
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
