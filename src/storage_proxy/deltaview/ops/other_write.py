"""POST and bucket-level writes: refused by the read-only wrapper, otherwise not implemented."""

from __future__ import annotations

from aiohttp import web

from ..context import Call


async def handle(call: Call) -> web.StreamResponse:
    await call.view.store.post(call.request.path, call.key or "")
    return web.Response(status=204)
