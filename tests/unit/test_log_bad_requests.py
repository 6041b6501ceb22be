"""A malformed request head is answered 400 by aiohttp, which logged it with a traceback: the
project's logging setup makes that one line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from storage_proxy.logsetup import BAD_REQUESTS, setup_logging


@pytest.fixture
def logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("aiohttp.server").removeFilter(BAD_REQUESTS)


async def test_a_bad_header_is_one_log_line(
    logging_restored: None, aiohttp_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging({"level": "INFO", "drivers": ["console"]})
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    server = await aiohttp_server(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x7fb\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.split(b" ")[1] == b"400"
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "aiohttp.server" in line]
    assert len(lines) == 1 and "INFO" in lines[0] and "BadHttpMessage" in lines[0], lines
