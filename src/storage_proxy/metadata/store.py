"""What the daemon remembers beyond the bytes on disk.

The filesystem stays the truth for what exists (so existing Backend.AI volumes are served as they
are); the store keeps what a filesystem cannot say: proxy-enforced quota limits and the vfolder
registry.  :class:`MetadataStore` is the interface; :class:`SqliteMetadataStore` the
embedded default.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import aiosqlite


@dataclass(frozen=True, slots=True)
class VFolderRecord:
    volume: str
    vfid: str
    quota_scope: str
    created_at: float


class MetadataStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def get_quota_limit(self, volume: str, qsid: str) -> int | None: ...

    @abstractmethod
    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None: ...

    @abstractmethod
    async def delete_quota_scope(self, volume: str, qsid: str) -> None: ...

    @abstractmethod
    async def register_vfolder(self, volume: str, vfid: str, quota_scope: str) -> None: ...

    @abstractmethod
    async def unregister_vfolder(self, volume: str, vfid: str) -> None: ...

    @abstractmethod
    async def list_vfolders(self, volume: str | None = None) -> list[VFolderRecord]: ...


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
    PRIMARY KEY (volume, vfid)
);
"""


class SqliteMetadataStore(MetadataStore):
    """SQLite through aiosqlite (one connection, its own thread): nothing blocks the event loop."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("metadata store is not open")
        return self._db

    async def open(self) -> None:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(str(self.path))
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def get_quota_limit(self, volume: str, qsid: str) -> int | None:
        async with self.db.execute(
            "SELECT limit_bytes FROM quota_scopes WHERE volume = ? AND qsid = ?", (volume, qsid)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None:
        await self.db.execute(
            "INSERT INTO quota_scopes (volume, qsid, limit_bytes, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (volume, qsid) DO UPDATE SET"
            " limit_bytes = excluded.limit_bytes, updated_at = excluded.updated_at",
            (volume, qsid, limit_bytes, time.time()),
        )
        await self.db.commit()

    async def delete_quota_scope(self, volume: str, qsid: str) -> None:
        await self.db.execute(
            "DELETE FROM quota_scopes WHERE volume = ? AND qsid = ?", (volume, qsid)
        )
        await self.db.commit()

    async def register_vfolder(self, volume: str, vfid: str, quota_scope: str) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO vfolders (volume, vfid, quota_scope, created_at)"
            " VALUES (?, ?, ?, ?)",
            (volume, vfid, quota_scope, time.time()),
        )
        await self.db.commit()

    async def unregister_vfolder(self, volume: str, vfid: str) -> None:
        await self.db.execute("DELETE FROM vfolders WHERE volume = ? AND vfid = ?", (volume, vfid))
        await self.db.commit()

    async def list_vfolders(self, volume: str | None = None) -> list[VFolderRecord]:
        query = "SELECT volume, vfid, quota_scope, created_at FROM vfolders"
        args: tuple[str, ...] = ()
        if volume is not None:
            query += " WHERE volume = ?"
            args = (volume,)
        async with self.db.execute(query + " ORDER BY created_at", args) as cur:
            rows = await cur.fetchall()
        return [VFolderRecord(*row) for row in rows]
