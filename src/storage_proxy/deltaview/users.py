"""Distinct users of the view over the last minute: per process, or across every node via Redis.

Each request records its access key locally (no I/O on the request path); at most once a second
per key the sighting also goes to a Redis sorted set (score: wall-clock time), so the gauge on any
node counts the users of all nodes.  Redis down: the process's own count, and a warning once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW = 60.0
PUSH_EVERY = 1.0  # seconds between two Redis writes for one access key
REDIS_KEY = "storage-proxy:deltaview:users"


class SeenUsers:
    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        *,
        clock: Callable[[], float] = time.time,
        key: str = REDIS_KEY,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._key = key
        self._seen: dict[str, float] = {}  # access key -> last sighting
        self._pushed: dict[str, float] = {}  # access key -> last write to Redis
        self._pending: set[asyncio.Task[None]] = set()
        self._warned = False

    async def close(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()

    def saw(self, access_key: str | None) -> None:
        if not access_key:
            return
        now = self._clock()
        self._seen[access_key] = now
        if self._redis is not None and now - self._pushed.get(access_key, 0.0) >= PUSH_EVERY:
            self._pushed[access_key] = now
            task = asyncio.get_running_loop().create_task(self._push(access_key, now))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def local_count(self) -> int:
        cutoff = self._clock() - WINDOW
        for k in [k for k, t in self._seen.items() if t < cutoff]:
            del self._seen[k]
            self._pushed.pop(k, None)
        return len(self._seen)

    async def count(self) -> int:
        """Users seen in the last minute: every node's with Redis, else this process's."""
        if self._redis is None:
            return self.local_count()
        await asyncio.gather(*self._pending, return_exceptions=True)
        cutoff = self._clock() - WINDOW
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self._key, "-inf", f"({cutoff}")
                pipe.zcard(self._key)
                _, total = await pipe.execute()
        except (RedisError, OSError) as e:
            self._warn(e)
            return self.local_count()
        self._warned = False
        return int(total)

    async def _push(self, access_key: str, when: float) -> None:
        try:
            await self._redis.zadd(self._key, {access_key: when}, gt=True)  # type: ignore[union-attr]
            await self._redis.expire(self._key, int(WINDOW * 2))  # type: ignore[union-attr]
        except (RedisError, OSError) as e:
            self._warn(e)
            self._pushed.pop(access_key, None)  # try again on its next request

    def _warn(self, e: Exception) -> None:
        if not self._warned:
            log.warning("delta view: Redis unavailable (%s); counting this process's users", e)
            self._warned = True
