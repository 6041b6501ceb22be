"""Redis for what nodes must agree on: leases on resumable uploads (one writer per upload,
whichever node the client reaches), and the clients the shared cache and events use.

``[redis]`` configured → every append takes the upload's lease first (``SET NX PX`` with a token,
renewed while the append runs, released by compare-and-delete), so two nodes serving one upload
never both append.  Redis down or frozen → what needs it answers 503 within ``[redis] timeout``
(1 s by default: every connection and command has that deadline), the rest keeps serving, and
the client reconnects by itself when Redis is back.  A lease whose release failed while Redis
was away is released as soon as Redis answers again, and one this process holds for a request
that has ended is taken over at once, so retries are not refused until the lease expires.
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

from ..core.errors import BackendUnavailable, Conflict

log = logging.getLogger(__name__)

LEASE_TTL_MS = 10_000
DEFAULT_TIMEOUT = 1.0
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_TAKE_OVER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def redis_client(
    cfg: Mapping[str, Any], *, retries: bool = True, blocking: bool = False
) -> aioredis.Redis:
    """A client for ``[redis]`` whose every connection and command has the ``timeout`` deadline.

    With ``retries`` a command is retried once at once (a connection dropped by an idle timeout);
    without, a dropped connection surfaces at once (what a subscription must notice, and what a
    cache would rather skip than wait for).  ``blocking``: for a pub/sub reader that waits for
    messages, whose reads have no deadline (its health check notices a dead server)."""
    addr = cfg["addr"]
    timeout = float(cfg.get("timeout") or DEFAULT_TIMEOUT)
    return aioredis.Redis(
        host=addr["host"],
        port=int(addr["port"]),
        db=int(cfg.get("db", 0)),
        password=cfg.get("password") or None,
        socket_connect_timeout=timeout,
        socket_timeout=None if blocking else timeout,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 1 if retries else 0),
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

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "storage-proxy",
        ttl_ms: int = LEASE_TTL_MS,
        holder: str | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        # Who holds: this node.  Its worker processes also exclude each other with the staged
        # file's lock, so one of them may take over a lease another left behind.
        self.holder = holder or uuid.uuid4().hex[:12]
        self._held: dict[str, str] = {}  # key → value, for the blocks running now
        self._unreleased: dict[str, str] = {}  # key → value whose release failed
        self._retrier: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], holder: str | None = None) -> RedisLeases:
        return cls(redis_client(cfg, retries=False), holder=holder)  # a deadline, not two

    async def close(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrier
        await self.client.aclose()

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as e:
            raise RedisUnavailable(f"Redis does not answer: {e}") from None

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold ``name`` for the block; Conflict if another holder has it; 503 if Redis is
        away (within the client's deadline)."""
        key = f"{self.prefix}:lease:{name}"
        value = f"{self.holder}:{uuid.uuid4().hex}"
        try:
            if not await self.client.set(key, value, nx=True, px=self.ttl_ms):
                if not await self._take_over_own(key, value):
                    raise Conflict(f"{name} is held by another writer; retry when it stops")
        except (RedisError, OSError) as e:
            raise RedisUnavailable(f"cannot take the lease on {name}: {e}") from None
        self._held[key] = value
        self._unreleased.pop(key, None)
        renewer = asyncio.create_task(self._renew(key, value))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            del self._held[key]
            await self._release(key, value)

    async def _take_over_own(self, key: str, value: str) -> bool:
        """A lease this node holds for no block running here (its release failed while Redis was
        away, or another worker of this node left it) is taken over atomically instead of
        refusing until it expires; the staged file's lock still admits one writer per host."""
        current = await self.client.get(key)
        if current is None:
            return bool(await self.client.set(key, value, nx=True, px=self.ttl_ms))
        current = current.decode() if isinstance(current, bytes) else str(current)
        if not current.startswith(self.holder + ":") or key in self._held:
            return False
        return bool(await self.client.eval(_TAKE_OVER, 1, key, current, value, self.ttl_ms))

    async def _release(self, key: str, value: str) -> None:
        try:
            await self.client.eval(_RELEASE, 1, key, value)
        except (RedisError, OSError):
            log.warning("could not release the lease %s; releasing it once Redis is back", key)
            self._unreleased[key] = value
            if self._retrier is None or self._retrier.done():
                self._retrier = asyncio.create_task(self._release_later(), name="lease-release")

    async def _release_later(self) -> None:
        while self._unreleased:
            await asyncio.sleep(0.5)
            for key, value in list(self._unreleased.items()):
                try:
                    await self.client.eval(_RELEASE, 1, key, value)
                except (RedisError, OSError):
                    break  # still away
                self._unreleased.pop(key, None)

    async def _renew(self, key: str, value: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.client.eval(_RENEW, 1, key, value, self.ttl_ms)
            except (RedisError, OSError):
                log.warning("could not renew the lease %s", key)
