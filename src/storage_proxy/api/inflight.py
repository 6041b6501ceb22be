"""Counting requests in flight, so shutdown can wait for them before closing connections.

aiohttp's own shutdown closes every connection first and then waits, which cuts off a request
whose body is still arriving (an upload).  The daemon instead stops listening, waits here until
the requests it already accepted have answered, and only then tears the connections down.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .problem import Handler


class InflightRequests:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """True when every request finished within ``within`` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True
