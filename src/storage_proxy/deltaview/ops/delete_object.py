from __future__ import annotations

from aiohttp import web

from ..context import Call


async def handle(call: Call) -> web.StreamResponse:
    view = call.view
    await view.store.begin_write(call.key or "")  # read-only: refused here, nothing else
    alias, rel, loc = call.table()
    await view.gate.authorize_write(alias, rel, call.principal)
    await view.store.delete(loc.bucket, loc.prefix + rel)
    return web.Response(status=204)
