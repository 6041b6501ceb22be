"""Every door reads a request body through ``body_chunks``: the whole body, in order, whatever
the framing (a length, chunked encoding with its boundaries, nothing), and chunks handed on as
the connection received them (not joined into copies)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from storage_proxy.api.streams import body_chunks


async def _server(seen: list[list[int]]) -> TestServer:
    async def handler(request: web.Request) -> web.Response:
        sizes, digest = [], hashlib.sha256()
        async for chunk in body_chunks(request):
            sizes.append(len(chunk))
            digest.update(chunk)
        seen.append(sizes)
        return web.json_response({"size": sum(sizes), "sha256": digest.hexdigest()})

    app = web.Application()
    app.router.add_put("/", handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def _raw(server: TestServer, head: bytes, pieces: list[bytes]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head)
    for piece in pieces:  # in separate writes, some of them after a pause
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    return dict(json.loads(response.partition(b"\r\n\r\n")[2]))


async def test_a_chunked_body_arrives_whole_across_its_boundaries() -> None:
    seen: list[list[int]] = []
    server = await _server(seen)
    try:
        parts = [os.urandom(n) for n in (1, 0, 70_000, 5, 300_000, 2)]
        # each chunk's data, then its CRLF in a write of its own: the reader takes the data
        # before the chunk's end is known, and then meets the end alone (an empty piece)
        framed = [f for p in parts if p for f in (b"%x\r\n%s" % (len(p), p), b"\r\n")]
        framed.append(b"0\r\n\r\n")
        head = (
            b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        got = await _raw(server, head, framed)
        body = b"".join(parts)
        assert got == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    finally:
        await server.close()


async def test_a_body_with_a_length_and_an_empty_one() -> None:
    seen: list[list[int]] = []
    server = await _server(seen)
    try:
        body = os.urandom(3 << 20)
        head = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        pieces = [body[i : i + 200_000] for i in range(0, len(body), 200_000)]
        got = await _raw(server, head % len(body), pieces)
        assert got == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        assert len(seen[-1]) > 1 and max(seen[-1]) <= 1 << 20  # as received, never one join
        got = await _raw(server, head % 0, [])
        assert got == {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    finally:
        await server.close()
