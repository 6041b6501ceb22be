"""Who is calling: SigV4 checked against the proxy's own credential store (config + database),
with lookups cached; and what they may read: static rules plus per-user database rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from . import sigv4
from .config import Credential, DeltaViewConfig, PartitionMap
from .db import Database
from .errors import S3Error, S3ErrorCode, access_denied


@dataclass(frozen=True)
class Principal:
    user: str
    access_key: str | None  # None for anonymous callers


K = TypeVar("K")
V = TypeVar("V")


class _TtlCache(Generic[K, V]):  # noqa: UP046 - Python 3.11
    def __init__(self, ttl: float, clock: Callable[[], float], size: int = 10_000) -> None:
        self._ttl, self._clock, self._size = ttl, clock, size
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        hit = self._items.get(key)
        if hit and self._clock() - hit[0] < self._ttl:
            return True, hit[1]
        return False, None

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[key] = (self._clock(), value)


class Authenticator:
    def __init__(
        self,
        cfg: DeltaViewConfig,
        db: Database | None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cfg = cfg
        self._db = db
        self._static = {c.access_key_id: c for c in cfg.credentials}
        self._creds: _TtlCache[str, Credential | None] = _TtlCache(cfg.auth_cache_ttl, clock)
        self._rules: _TtlCache[tuple[str, str], list[PartitionMap]] = _TtlCache(
            cfg.auth_cache_ttl, clock
        )
        self._wallclock = wallclock

    async def credential(self, access_key: str) -> Credential | None:
        if cred := self._static.get(access_key):
            return cred
        if self._db is None:
            return None
        hit, cached = self._creds.get(access_key)
        if hit:
            return cached
        cred = await self._db.credential(access_key)
        self._creds.put(access_key, cred)
        return cred

    async def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str]
    ) -> Principal:
        sr = sigv4.parse(raw_query, headers)
        if sr is None:
            if self._cfg.anonymous_user:
                return Principal(self._cfg.anonymous_user, None)
            raise access_denied("anonymous", "Anonymous access is not allowed.")
        cred = await self.credential(sr.access_key)
        if cred is None:
            raise S3Error(S3ErrorCode.INVALID_ACCESS_KEY_ID, reason="unknown-key")
        sigv4.verify(
            method,
            raw_path,
            raw_query,
            headers,
            sr,
            cred.secret_access_key,
            self._wallclock(),
            self._cfg.max_clock_skew,
        )
        return Principal(cred.user, cred.access_key_id)

    async def rules(self, principal: Principal, alias: str) -> list[PartitionMap]:
        """Static allowedPartitions (every authenticated user) plus the user's database grants."""
        static = list(self._cfg.allowed_partitions.get(alias, ()))
        if self._db is None:
            return static
        key = (principal.user, alias)
        hit, cached = self._rules.get(key)
        if not hit:
            cached = await self._db.rules(principal.user, alias)
            self._rules.put(key, cached)
        return static + list(cached or ())
