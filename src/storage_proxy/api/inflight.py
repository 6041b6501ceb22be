"""Requests in flight and the connections they arrive on: shutdown and stalled connections.

aiohttp's own shutdown closes every connection first and then waits, which cuts off a request
whose body is still arriving (an upload).  The daemon instead stops listening, answers anything
new with 503 ``shutting-down`` on a closing connection, closes idle keep-alive connections,
waits here until the requests it already accepted have answered, and only then tears down the
rest — all within one ``shutdown-timeout``.

A connection that never completes a request head (a slow-loris client), or stays idle between
requests, is closed after ``request-header-timeout`` by :meth:`InflightRequests.watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from .problem import Handler, problem_response
from .streams import cut


class InflightRequests:
    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy: dict[Any, int] = {}  # transport → requests in progress on it
        self._since: dict[Any, float] = {}  # transport → when it last became idle (or opened)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.draining:
            refusal = problem_response(
                503, "shutting-down", "Shutting down", "this node is stopping; retry elsewhere"
            )
            refusal.force_close()
            return refusal
        transport = request.transport
        self.begin(transport)
        try:
            response = await handler(request)
            if self.draining and not response.prepared:
                response.force_close()
            return response
        finally:
            self.end(transport)

    def begin(self, transport: Any) -> None:
        """A request on ``transport`` is being answered (the drain waits for it)."""
        self.count += 1
        self._idle.clear()
        self._busy[transport] = self._busy.get(transport, 0) + 1

    def end(self, transport: Any) -> None:
        """It was answered: the connection is idle from now on unless another one runs."""
        self.count -= 1
        left = self._busy.get(transport, 1) - 1
        if left:
            self._busy[transport] = left
        else:
            self._busy.pop(transport, None)
            self._since[transport] = time.monotonic()
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """True when every request finished within ``within`` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def close_idle(self, servers: Iterable[Any]) -> None:
        """Close the connections with no request in progress (a busy one closes after its
        answer: the middleware marks that answer ``Connection: close``)."""
        for server in servers:
            for conn in list(getattr(server, "connections", ())):
                if conn.transport is not None and conn.transport not in self._busy:
                    conn.close()

    def abort_busy(self) -> int:
        """Cut the connections of requests still running (the drain's time is up): their
        handlers end with a connection error at once instead of being cancelled later."""
        busy = list(self._busy)
        for transport in busy:
            cut(transport)
        return len(busy)

    def sweep(self, servers: Iterable[Any], header_timeout: float) -> int:
        """Close connections with no request in progress for ``header_timeout`` seconds."""
        now = time.monotonic()
        seen = set()
        closed = 0
        for server in servers:
            for conn in list(getattr(server, "connections", ())):
                transport = conn.transport
                if transport is None:
                    continue
                seen.add(transport)
                if transport in self._busy:
                    continue
                since = self._since.setdefault(transport, now)
                if now - since > header_timeout:
                    transport.close()
                    closed += 1
        for transport in list(self._since):
            if transport not in seen:
                del self._since[transport]
        return closed

    async def watch(self, servers: Callable[[], Iterable[Any]], header_timeout: float) -> None:
        """Sweep stalled connections until cancelled."""
        period = max(0.2, min(1.0, header_timeout / 4))
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                self.sweep(servers(), header_timeout)
