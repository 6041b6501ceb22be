"""A strict S3 gate for tests: checks what real S3 (and MinIO, RGW) check and moto does not.

moto's server verifies neither signatures, nor ``X-Amz-Expires``, nor ``Content-MD5``.  This gate
sits in front of it on 127.0.0.1, verifies every request's SigV4 signature (header and presigned
forms, expiry included) with the test credentials, refuses a body whose MD5 differs from its
``Content-MD5`` (``BadDigest``), and forwards what passes to moto unchanged.  It is a test
double of S3's checks only; storage is moto's.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from storage_proxy.deltaview import sigv4
from storage_proxy.deltaview.errors import S3Error

_HOP = {"host", "content-length", "transfer-encoding", "connection"}


def _error(status: int, code: str, message: str) -> web.Response:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def make_gate(upstream: str, secrets: dict[str, str]) -> web.Application:
    """``secrets``: access key id → secret access key."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            signed = sigv4.parse(raw_query, request.headers)
            if signed is None:
                return _error(403, "AccessDenied", "anonymous requests are not allowed")
            secret = secrets.get(signed.access_key)
            if secret is None:
                return _error(403, "InvalidAccessKeyId", "unknown access key")
            sigv4.verify(
                request.method,
                raw_path,
                raw_query,
                request.headers,
                signed,
                secret,
                datetime.now(UTC),
            )
        except S3Error as e:
            return _error(e.error.status, e.error.code, e.message)
        body = await request.read()
        md5 = request.headers.get("Content-MD5")
        chunked = "aws-chunked" in request.headers.get("Content-Encoding", "")
        if md5 is not None and not chunked:
            if base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
                return _error(400, "BadDigest", "the Content-MD5 does not match the body")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(
            request.method, upstream + request.raw_path, data=body, headers=headers
        ) as up:
            payload = await up.read()
            out = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            return web.Response(status=up.status, body=payload, headers=out)

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app["session"].close()

    app = web.Application(client_max_size=1 << 30)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
