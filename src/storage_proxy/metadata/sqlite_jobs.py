"""Background tasks, job leases, busy vfolders, retention periods, versions and snapshot
policies in the embedded store."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from ..core.records import BgTaskRecord
from ..core.snapshot_policy import SnapshotPolicy
from .sqlite_base import SqliteBase, fetch_rows, scalar

_BGTASK_COLUMNS = (
    "id, kind, status, owner, created_at, updated_at, current, total, message, params, result,"
    " error, finished_at, cancel_requested"
)
_BGTASK_JSON = frozenset({"params", "result", "error"})
_LIVE = "('pending', 'running')"


def _bgtask(row: Any) -> BgTaskRecord:
    values = dict(zip(_BGTASK_COLUMNS.replace(" ", "").split(","), row, strict=True))
    for key in _BGTASK_JSON:
        values[key] = None if values[key] is None else json.loads(values[key])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return BgTaskRecord(**values)


class SqliteJobsMixin(SqliteBase):
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
                await scalar(db, "SELECT holder FROM job_leases WHERE name = ?", (name,)) == holder
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
            found = await fetch_rows(
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

    async def set_vfolder_versions(self, volume: str, vfid: str, keep: int) -> None:
        if keep <= 0:
            sql = "DELETE FROM vfolder_versions WHERE volume = ? AND vfid = ?"
            await self._write(sql, (volume, vfid))
        else:
            await self._write(
                "INSERT OR REPLACE INTO vfolder_versions VALUES (?, ?, ?)", (volume, vfid, keep)
            )

    async def get_vfolder_versions(self, volume: str, vfid: str) -> int:
        row = await self._one(
            "SELECT keep FROM vfolder_versions WHERE volume = ? AND vfid = ?", (volume, vfid)
        )
        return 0 if row is None else int(row[0])

    async def set_snapshot_policy(
        self, volume: str, target: str, policy: SnapshotPolicy | None
    ) -> None:
        if policy is None:
            sql = "DELETE FROM snapshot_policies WHERE volume = ? AND target = ?"
            await self._write(sql, (volume, target))
        else:
            await self._write(
                "INSERT OR REPLACE INTO snapshot_policies VALUES (?, ?, ?, ?, ?)",
                (volume, target, policy.every, policy.keep_last, policy.keep_daily),
            )

    async def get_snapshot_policies(self, volume: str) -> dict[str, SnapshotPolicy]:
        rows = await self._all(
            "SELECT target, every, keep_last, keep_daily FROM snapshot_policies WHERE volume = ?",
            (volume,),
        )
        return {
            str(target): SnapshotPolicy(int(every), int(last), int(daily))
            for target, every, last, daily in rows
        }
