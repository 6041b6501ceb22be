"""A webhook receiver on 127.0.0.1: the URL to configure and the JSON bodies it was posted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

Webhook = tuple[str, list[dict[str, Any]]]


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/hook")), received
    await server.close()
