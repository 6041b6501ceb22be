"""``storage-proxy client-proxy``: a local HTTP proxy for S3 clients that wrongly forward their
``Authorization`` header when they follow a 307 to a presigned URL (the backend then rejects
the request). Point the client's endpoint here: requests go to the view unchanged (the Host
header too, so the client's signature still verifies); a 307 is followed by the proxy itself
with only the ``Range`` header, and the object streams back to the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization"}
SESSION = web.AppKey("client-proxy-session", aiohttp.ClientSession)
CHUNK = 1 << 20
FOLLOW_HEADER = "X-Deltaview-Follow"


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
    await response.write_eof()
    return response


def build_app(upstream: str) -> web.Application:
    upstream = upstream.rstrip("/")

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
        )
        yield
        await app[SESSION].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        http = request.app[SESSION]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers[FOLLOW_HEADER] = "plain"  # we follow a 307 with a plain GET: sign for that
        body = request.content if request.body_exists else None
        async with http.request(
            request.method,
            URL(upstream + request.raw_path, encoded=True),  # as signed: no re-quoting
            headers=headers,
            data=body,
            allow_redirects=False,
            skip_auto_headers={"Content-Type", "User-Agent", "Accept-Encoding"},
        ) as first:
            if first.status not in (301, 302, 303, 307, 308) or "Location" not in first.headers:
                return await _relay(request, first)
            location = first.headers["Location"]
        follow = {"Range": request.headers["Range"]} if "Range" in request.headers else {}
        target = URL(location, encoded=True)
        async with http.request(request.method, target, headers=follow) as second:
            return await _relay(request, second)

    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
