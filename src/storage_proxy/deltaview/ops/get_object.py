"""GetObject: proxy mode streams from the backend (bounded memory, single Range → 206);
presignedUrl mode answers 307 with a short-lived backend URL (Range too, unless proxyPartial)."""

from __future__ import annotations

from aiohttp import web

from .. import objects, ranges
from ..context import Call


async def handle(call: Call) -> web.StreamResponse:
    view, request = call.view, call.request
    alias, rel, loc = call.table()
    await view.gate.authorize_read(alias, rel, call.principal)
    range_header = request.headers.get("Range")
    if view.cfg.get_mode == "presignedUrl" and not (range_header and view.cfg.proxy_partial):
        url = await view.store.presign_get(loc.bucket, loc.prefix + rel, view.cfg.presign_expiry)
        view.metrics.redirected.inc()
        return web.Response(status=307, headers={"Location": url, "Cache-Control": "no-store"})
    meta = await view.meta.get(view.store, loc, rel)
    span = ranges.resolve(range_header, meta.size)
    headers = objects.headers(meta)
    backend_range = None
    status = 200
    if span is not None:
        first, last = span
        status = 206
        backend_range = f"bytes={first}-{last}"
        headers["Content-Range"] = ranges.content_range(first, last, meta.size)
        headers["Content-Length"] = str(last - first + 1)
    download = await view.store.get(loc.bucket, loc.prefix + rel, backend_range)
    view.metrics.proxied.inc()
    headers["x-amz-request-id"] = call.request_id
    response = web.StreamResponse(status=status, headers=headers)
    try:
        await response.prepare(request)
        async for chunk in download.body:
            await response.write(chunk)
        await response.write_eof()
    finally:
        download.close()
    return response
