"""Proxy-served file URLs (``sharing.fileUrls: proxy``): ``/delta-sharing/files/<token>``, an
HMAC-signed (table, path, expiry) claim; the view streams the file from the backend, with Range.
For backends that cannot presign, or when recipients must not reach the backend."""

from __future__ import annotations

from aiohttp import web

from .. import objects, ranges
from ..errors import S3Error, S3ErrorCode
from .service import SharingService


async def serve(request: web.Request, svc: SharingService, token: str) -> web.StreamResponse:
    alias, rel = svc.open_file(token)
    loc = svc.location(alias)
    store = svc.store
    meta = await store.head(loc.bucket, loc.prefix + rel)
    span = ranges.resolve(request.headers.get("Range"), meta.size)
    headers = objects.headers(meta)
    status, backend_range = 200, None
    if span is not None:
        first, last = span
        status, backend_range = 206, f"bytes={first}-{last}"
        headers["Content-Range"] = ranges.content_range(first, last, meta.size)
        headers["Content-Length"] = str(last - first + 1)
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    if request.method != "GET":
        raise S3Error(S3ErrorCode.METHOD_NOT_ALLOWED)
    download = await store.get(loc.bucket, loc.prefix + rel, backend_range)
    response = web.StreamResponse(status=status, headers=headers)
    try:
        await response.prepare(request)
        async for chunk in download.body:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        svc.client_gone()
    finally:
        download.close()
    return response
