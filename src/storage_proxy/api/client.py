"""The client-facing API (people and programs). Health for now; the data path plugs in here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .. import __version__
from .keys import ROOT_CTX
from .problem import problem_middleware, request_id_middleware

if TYPE_CHECKING:
    from ..context import RootContext


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "type": "client-facing", "storage-proxy": __version__}
    )


def create_client_app(ctx: RootContext) -> web.Application:
    app = web.Application(middlewares=[request_id_middleware, problem_middleware])
    app[ROOT_CTX] = ctx
    app.router.add_get("/", status)
    app.router.add_get("/status", status)
    return app
