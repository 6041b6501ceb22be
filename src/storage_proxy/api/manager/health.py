"""Health routes (no token): enough for a load balancer and for Backend.AI's status probe."""

from __future__ import annotations

import os

from aiohttp import web

from ... import __version__


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "type": "manager-facing", "storage-proxy": __version__, "pid": os.getpid()}
    )
