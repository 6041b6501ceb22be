"""An error after a streamed answer has started: the connection is cut (the body ends short,
no closing chunk), one log line, counted — never a second HTTP answer inside the first body."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from storage_proxy.api.front import front_door, on_prepare
from storage_proxy.api.keys import SERVICES
from storage_proxy.api.metrics import DaemonMetrics
from storage_proxy.core.errors import InvalidPath


def _app(error: Exception) -> tuple[web.Application, DaemonMetrics]:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/zip"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"PK-the-first-bytes")
        raise error

    metrics = DaemonMetrics()
    app = web.Application(middlewares=[front_door(metrics)])
    app[SERVICES] = SimpleNamespace(metrics=metrics)  # type: ignore[assignment]
    app.on_response_prepare.append(on_prepare(metrics))
    app.router.add_get("/zip", stream)
    return app, metrics


async def _raw_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /zip HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: only a cut ends it
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("error", "code", "traceback"),
    [
        (InvalidPath("not a regular file: pipe"), "invalid-path", False),
        (OSError(22, "not a regular file"), "broken-off", False),
        (RuntimeError("a bug"), "broken-off", True),
    ],
)
async def test_an_error_after_the_headers_cuts_the_connection(
    aiohttp_server: Any,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: str,
    traceback: bool,
) -> None:
    app, metrics = _app(error)
    server = await aiohttp_server(app)
    with caplog.at_level(logging.INFO, logger="storage_proxy.api"):
        data = await _raw_get(server.port)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1") == 1, data  # no second answer in the body
    assert b"PK-the-first-bytes" in data
    assert not data.endswith(b"0\r\n\r\n"), data  # no closing chunk: the client sees it short
    records = [r for r in caplog.records if r.name == "storage_proxy.api"]
    assert len(records) == 1 and "broken off" in records[0].getMessage()
    assert bool(records[0].exc_info) is traceback  # a traceback only for what is not expected
    assert metrics.broken_off.labels(code)._value.get() == 1
