from __future__ import annotations

from aiohttp import web

from .. import objects
from ..context import Call


async def handle(call: Call) -> web.StreamResponse:
    alias, rel, loc = call.table()
    table_view = await call.view.gate.authorize_read(alias, rel, call.principal)
    rewritten = await call.view.logs.lookup(alias, loc, rel, table_view)
    if rewritten is not None:
        return await objects.serve_bytes(call, rewritten, None, head=True)
    meta = await call.view.meta.get(call.view.store, loc, rel)
    return web.Response(status=200, headers=objects.headers(meta))
