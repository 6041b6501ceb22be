"""The database side of credentials and per-(user, table) partition rules (SQLite, aiosqlite).

Tables::

    deltaview_credentials(access_key_id PRIMARY KEY, secret_access_key, user)
    deltaview_partition_rules(user, table_alias, partition_values)  -- a JSON object per row
    deltaview_sharing_recipients(token_sha256 PRIMARY KEY, user, expires_at)  -- ISO 8601

A rule row ``{"region": "eu"}`` grants that user the files of that partition in that table;
``{}`` grants the whole table.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiosqlite

from .config import Credential, PartitionMap

SCHEMA = """
CREATE TABLE IF NOT EXISTS deltaview_credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    user TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deltaview_partition_rules (
    user TEXT NOT NULL,
    table_alias TEXT NOT NULL,
    partition_values TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deltaview_rules_by_user
    ON deltaview_partition_rules (user, table_alias);
CREATE TABLE IF NOT EXISTS deltaview_sharing_recipients (
    token_sha256 TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""


def _as_map(text: str) -> PartitionMap | None:
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    out: PartitionMap = {}
    for col, value in raw.items():
        values = value if isinstance(value, list) else [value]
        out[str(col)] = tuple(str(v) for v in values)
    return out


class Database:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        conn = await aiosqlite.connect(str(path))
        await conn.executescript(SCHEMA)
        await conn.commit()
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def credential(self, access_key_id: str) -> Credential | None:
        async with self._conn.execute(
            "SELECT secret_access_key, user FROM deltaview_credentials WHERE access_key_id = ?",
            (access_key_id,),
        ) as cur:
            row = await cur.fetchone()
        return Credential(access_key_id, row[0], row[1]) if row else None

    async def rules(self, user: str, table_alias: str) -> list[PartitionMap]:
        async with self._conn.execute(
            "SELECT partition_values FROM deltaview_partition_rules"
            " WHERE user = ? AND table_alias = ?",
            (user, table_alias),
        ) as cur:
            rows = await cur.fetchall()
        # a malformed row grants nothing (when in doubt, deny)
        return [m for (text,) in rows if (m := _as_map(text)) is not None]

    async def add_credential(self, cred: Credential) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO deltaview_credentials VALUES (?, ?, ?)",
            (cred.access_key_id, cred.secret_access_key, cred.user),
        )
        await self._conn.commit()

    async def add_rule(self, user: str, table_alias: str, values: dict[str, object]) -> None:
        await self._conn.execute(
            "INSERT INTO deltaview_partition_rules VALUES (?, ?, ?)",
            (user, table_alias, json.dumps(values)),
        )
        await self._conn.commit()

    async def sharing_recipient(self, token_sha256: str) -> tuple[str, str] | None:
        """(user, expires_at) of a Delta Sharing bearer token, by its SHA-256 hex digest."""
        async with self._conn.execute(
            "SELECT user, expires_at FROM deltaview_sharing_recipients WHERE token_sha256 = ?",
            (token_sha256,),
        ) as cur:
            row = await cur.fetchone()
        return (str(row[0]), str(row[1])) if row else None

    async def add_sharing_recipient(self, token_sha256: str, user: str, expires_at: str) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO deltaview_sharing_recipients VALUES (?, ?, ?)",
            (token_sha256, user, expires_at),
        )
        await self._conn.commit()
