"""Read-through caches every node shares: a copy in each process, a longer-lived one in Redis,
both dropped on every node when what they copy changes.

Two tiers because each pays for something else: the process copy answers a permission check
with no round trip at all; the Redis copy lets one node's expensive answer (a usage scan) serve
every node.  The rules that keep them honest:

- A writer changes the store first, then invalidates: one script bumps the key's generation,
  deletes (or replaces) the Redis copy and publishes the key on a channel every process listens to.
- A reader that had to load from the store fills Redis only if the key's generation is still the
  one it saw before loading, so a slow reader never puts back what a writer just invalidated.  The
  process copy follows the same rule with a count of the invalidations the process has heard.
- A process keeps and serves copies only while it is subscribed, since it could miss an
  invalidation otherwise; each (re)subscription starts from an empty process tier.  While Redis is
  away every read goes to the store, and caching resumes by itself when it is back.
- A writer that could not reach Redis to invalidate stops caching, and once Redis answers again it
  flushes every Redis copy (and tells every process to) before it caches again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .pubsub import RedisSubscriber

log = logging.getLogger(__name__)

FLUSH_ALL = "*"
#: Generations outlive any copy and any load by far (a reader compares against the one it saw).
GENERATION_TTL_MS = 24 * 3600 * 1000

# KEYS: value, generation; ARGV: generation seen before loading, value, ttl (ms).
_FILL = """
if (redis.call('get', KEYS[2]) or '0') == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS: value, generation; ARGV: generation ttl, channel, message, [new value, its ttl].
_CHANGE = """
redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[1])
if ARGV[4] then
  redis.call('set', KEYS[1], ARGV[4], 'PX', ARGV[5])
else
  redis.call('del', KEYS[1])
end
redis.call('publish', ARGV[2], ARGV[3])
return 1
"""

#: ``(cache kind, outcome)`` with outcome ``local``, ``redis``, ``miss`` or ``bypass``.
LookupHook = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class CacheKind:
    """One family of cached values (``vfolder``, ``acl``, ...) and how long copies may live."""

    name: str
    ttl: float  # seconds a Redis copy lives (a safety net: invalidation is what keeps it fresh)
    local_ttl: float  # seconds a process copy lives; 0 keeps none


class SharedCache:
    """JSON values under string keys, read through both tiers, invalidated everywhere."""

    def __init__(
        self,
        client: aioredis.Redis,
        subscriber: RedisSubscriber,
        *,
        prefix: str = "storage-proxy",
        local_max_entries: int = 100_000,
        on_lookup: LookupHook | None = None,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:cache"
        self.channel = f"{prefix}:cache-invalidate"
        self._local: dict[str, tuple[float, Any]] = {}
        self._local_max = local_max_entries
        self._on_lookup = on_lookup or (lambda kind, outcome: None)
        self._heard = 0  # invalidations heard by this process (guards process-tier fills)
        self._subscribed = False
        self._dirty = False  # an invalidation could not reach Redis: flush before caching again
        self._flushing = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None
        subscriber.listen(self.channel, self._forget, self._on_subscription)

    @property
    def active(self) -> bool:
        """True while copies may be kept and served (subscribed, nothing left to flush)."""
        return self._subscribed and not self._dirty

    # -- reading -----------------------------------------------------------------------------
    async def get(self, kind: CacheKind, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of ``key``, else ``load()`` (whose result is then cached)."""
        if self._dirty and self._subscribed:
            await self._flush()
        if not self.active:
            self._on_lookup(kind.name, "bypass")
            return await load()
        full = f"{kind.name}:{key}"
        local = self._local.get(full)
        if local is not None and local[0] > time.monotonic():
            self._on_lookup(kind.name, "local")
            return local[1]
        heard = self._heard
        try:
            raw, generation = await self._client.mget(self._value_key(full), self._gen_key(full))
        except (RedisError, OSError):
            self._on_lookup(kind.name, "bypass")
            return await load()
        if raw is not None:
            value = json.loads(raw)
            self._on_lookup(kind.name, "redis")
        else:
            value = await load()
            self._on_lookup(kind.name, "miss")
            seen = generation if generation is not None else "0"
            encoded = json.dumps(value, separators=(",", ":"))
            with contextlib.suppress(RedisError, OSError):
                await self._client.eval(
                    _FILL,
                    2,
                    self._value_key(full),
                    self._gen_key(full),
                    seen,
                    encoded,
                    int(kind.ttl * 1000),
                )
        if kind.local_ttl > 0 and heard == self._heard and self.active:
            self._remember(full, value, kind.local_ttl)
        return value

    # -- writing -----------------------------------------------------------------------------
    async def invalidate(self, kind: CacheKind, key: str) -> None:
        """Drop every copy of ``key`` on every node (call after the store has changed)."""
        await self._change(kind, key, None)

    async def put(self, kind: CacheKind, key: str, value: Any) -> None:
        """Replace the Redis copy with a fresh value; every process drops its own."""
        await self._change(kind, key, json.dumps(value, separators=(",", ":")))

    async def _change(self, kind: CacheKind, key: str, encoded: str | None) -> None:
        full = f"{kind.name}:{key}"
        self._forget(full)
        args: list[Any] = [GENERATION_TTL_MS, self.channel, full]
        if encoded is not None:
            args += [encoded, int(kind.ttl * 1000)]
        try:
            await self._client.eval(_CHANGE, 2, self._value_key(full), self._gen_key(full), *args)
        except (RedisError, OSError) as e:
            if not self._dirty:
                log.warning(
                    "cache: could not invalidate %s (%s); not caching until Redis is back", full, e
                )
            self._dirty = True
            self._forget(FLUSH_ALL)

    async def _flush(self) -> None:
        """Delete every Redis copy and tell every process to drop its own."""
        async with self._flushing:
            if not self._dirty:
                return
            try:
                async for key in self._client.scan_iter(match=f"{self._prefix}:v:*", count=1000):
                    await self._client.unlink(key)
                await self._client.publish(self.channel, FLUSH_ALL)
            except (RedisError, OSError):
                return  # still away; the next read tries again
            self._dirty = False
            log.info("cache: flushed after Redis came back; caching again")

    # -- the process tier --------------------------------------------------------------------
    def _remember(self, full: str, value: Any, ttl: float) -> None:
        if len(self._local) >= self._local_max:
            del self._local[next(iter(self._local))]  # the oldest insertion
        self._local[full] = (time.monotonic() + ttl, value)

    def _forget(self, full: str) -> None:
        self._heard += 1
        if full == FLUSH_ALL:
            self._local.clear()
        else:
            self._local.pop(full, None)

    def _on_subscription(self, up: bool) -> None:
        """Copies made before a (re)subscription may have missed an invalidation: drop them."""
        self._subscribed = up
        self._forget(FLUSH_ALL)
        if up and self._dirty:  # Redis is back: flush now rather than at the next read
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_when_back())

    async def _flush_when_back(self) -> None:
        while self._dirty and self._subscribed:
            await self._flush()
            if self._dirty:  # a pooled connection from before the outage; the next one is new
                await asyncio.sleep(0.2)

    def _value_key(self, full: str) -> str:
        return f"{self._prefix}:v:{full}"

    def _gen_key(self, full: str) -> str:
        return f"{self._prefix}:g:{full}"


@dataclass(frozen=True, slots=True)
class CacheKinds:
    """Every family the daemon caches, with lifetimes from ``[cache]``."""

    vfolder: CacheKind  # registry records (owner, kind, vfolder limit)
    acl: CacheKind
    quota: CacheKind  # quota-scope limits
    usage: CacheKind  # scan results (file count, bytes)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CacheKinds:
        ttl, local = cfg["ttl"].total_seconds(), cfg["local-ttl"].total_seconds()
        usage = cfg["usage-ttl"].total_seconds()
        return cls(
            vfolder=CacheKind("vfolder", ttl, local),
            acl=CacheKind("acl", ttl, local),
            quota=CacheKind("quota", ttl, local),
            usage=CacheKind("usage", usage, min(local, usage)),
        )
