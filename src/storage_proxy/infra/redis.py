"""Redis for what nodes must agree on: leases on resumable uploads (one writer per upload,
whichever node the client reaches), and the clients the shared cache and events use.

``[redis]`` configured → every append takes the upload's lease first (``SET NX PX`` with a token,
renewed while the append runs, released by compare-and-delete), so two nodes serving one upload
never both append.  Redis down → what needs it answers 503 with a clear error, the rest keeps
serving, and the client reconnects by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..errors import BackendUnavailable, Conflict

log = logging.getLogger(__name__)

LEASE_TTL_MS = 30_000
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def redis_client(cfg: Mapping[str, Any], *, retries: bool = True) -> aioredis.Redis:
    """A client for ``[redis]``.  Without retries, a dropped connection surfaces at once (what a
    subscription must notice, and what a cache would rather skip than wait for)."""
    addr = cfg["addr"]
    extra: dict[str, Any] = {"retry": Retry(NoBackoff(), 0)} if not retries else {}
    return aioredis.Redis(
        host=addr["host"],
        port=int(addr["port"]),
        db=int(cfg.get("db", 0)),
        password=cfg.get("password") or None,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=10,
        **extra,
    )


def redis_url(cfg: Mapping[str, Any]) -> str:
    """``[redis]`` as a URL (for parts configured that way, such as the Delta view)."""
    addr, password = cfg["addr"], cfg.get("password")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{addr['host']}:{int(addr['port'])}/{int(cfg.get('db', 0))}"


class RedisUnavailable(BackendUnavailable):
    code, title = "redis-unavailable", "Redis is unavailable"


class RedisLeases:
    """Named leases in Redis, each held by one token at a time."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "storage-proxy") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RedisLeases:
        return cls(redis_client(cfg))

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as e:
            raise RedisUnavailable(f"Redis does not answer: {e}") from None

    @contextlib.asynccontextmanager
    async def hold(self, name: str, *, ttl_ms: int = LEASE_TTL_MS) -> AsyncIterator[None]:
        """Hold ``name`` for the block; Conflict if another holder has it; 503 if Redis is down."""
        key = f"{self.prefix}:lease:{name}"
        token = uuid.uuid4().hex
        try:
            if not await self.client.set(key, token, nx=True, px=ttl_ms):
                raise Conflict(f"{name} is held by another writer; retry when it stops")
        except (RedisError, OSError) as e:
            raise RedisUnavailable(f"cannot take the lease on {name}: {e}") from None
        renewer = asyncio.create_task(self._renew(key, token, ttl_ms))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.client.eval(_RELEASE, 1, key, token)
            except (RedisError, OSError):
                log.warning("could not release the lease on %s; it expires by itself", name)

    async def _renew(self, key: str, token: str, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            try:
                await self.client.eval(_RENEW, 1, key, token, ttl_ms)
            except (RedisError, OSError):
                log.warning("could not renew the lease %s", key)
