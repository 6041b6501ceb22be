"""One Redis subscription per process, shared by everything that listens (cache invalidations,
background-task events), kept alive across Redis outages.

Pub/sub delivers at most once: a listener must know when it may have missed something.  Each
channel's ``on_state(True)`` runs when the subscription is confirmed (also after every silent
reconnect) and ``on_state(False)`` when it is lost, so a cache can stop trusting its copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class _Listener:
    on_message: Callable[[str], None]
    on_state: Callable[[bool], None]


class RedisSubscriber:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._listeners: dict[str, _Listener] = {}
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self.connected = False

    def listen(
        self,
        channel: str,
        on_message: Callable[[str], None],
        on_state: Callable[[bool], None] = lambda up: None,
    ) -> None:
        """Register before :meth:`start`."""
        self._listeners[channel] = _Listener(on_message, on_state)

    async def start(self, *, wait: float = 2.0) -> None:
        """Start listening; waits briefly for the first subscription (Redis may be down)."""
        self._task = asyncio.create_task(self._run(), name="redis-subscriber")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), wait)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*self._listeners)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    listener = self._listeners.get(message["channel"].decode())
                    if listener is None:
                        continue
                    if message["type"] == "subscribe":  # (re)subscribed: earlier news is lost
                        listener.on_state(True)
                        self.connected = True
                        self._first.set()
                    elif message["type"] == "message":
                        listener.on_message(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                if self.connected:
                    log.warning(
                        "lost the Redis subscription (%s); retrying every %ss", e, RECONNECT_DELAY
                    )
            finally:
                self.connected = False
                for listener in self._listeners.values():
                    listener.on_state(False)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_DELAY)
