"""What every vendor emulator shares: serving, request log, failure switches, usage from disk.

The emulators (``purestorage_emulator.py``, ``onefs_emulator.py``, ``weka_emulator.py``,
``vast_emulator.py``) are aiohttp apps on 127.0.0.1 that follow each vendor's documented wire
protocol; the production clients talk to them unchanged.  Quota objects are backed by real
directories on disk and their usage is computed from what is really stored there.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tree_bytes(root: Path) -> int:
    """Logical bytes of the regular files below ``root`` (0 if it is gone)."""
    total = 0
    for d, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(d, name)).st_size
            except FileNotFoundError:
                pass
    return total


def tree_entries(root: Path) -> int:
    """Files and directories below ``root``, itself included (what an inode count shows)."""
    if not root.is_dir():
        return 0
    return 1 + sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))


@dataclass
class Faults:
    """Failure switches: the next requests fail, hang, or answer garbage."""

    queue: list[tuple[str, int]] = field(default_factory=list)

    def fail(self, count: int = 1, status: int = 500) -> None:
        self.queue.extend([("fail", status)] * count)

    def hang(self, count: int = 1) -> None:
        """The next requests never get an answer (the client's timeout must end them)."""
        self.queue.extend([("hang", 0)] * count)

    def garble(self, count: int = 1) -> None:
        """The next requests get ``200`` with a body that is not JSON."""
        self.queue.extend([("garble", 0)] * count)


@dataclass
class EmulatorBase:
    """An emulator's common state; a vendor subclass adds routes, auth and error bodies."""

    root: Path
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    #: Headers of every request, for tests that check what the client sent.
    seen_headers: list[dict[str, str]] = field(default_factory=list)

    # -- what a vendor supplies ----------------------------------------------------------------
    def error(self, status: int, message: str) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def public(self, request: web.Request) -> bool:
        """Paths served without authentication (login, version discovery)."""
        return False

    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorized(self, request: web.Request) -> web.Response:
        return self.error(401, "authentication required")

    # -- the app -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app.router)
        return app

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        self.seen_headers.append(dict(request.headers))
        if self.faults.queue:
            kind, status = self.faults.queue.pop(0)
            if kind == "hang":
                await asyncio.sleep(3600)
            if kind == "garble":
                return web.Response(text="<html>gateway says hello</html>", status=200)
            return self.error(status, "simulated failure")
        if not self.public(request) and not self.authorized(request):
            return self.unauthorized(request)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.error(404, f"no such endpoint: {request.path}")
        except ValueError:  # a body that is not JSON, a number that is not one
            return self.error(400, "malformed request")


async def serve(
    emulator: EmulatorBase, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    """Serve on 127.0.0.1 at a port the kernel picks (no race); the runner and the endpoint."""
    runner = web.AppRunner(emulator.app(), handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    return runner, f"{scheme}://127.0.0.1:{port}"


async def json_body(request: web.Request) -> Json:
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("body is not an object")
    return body
