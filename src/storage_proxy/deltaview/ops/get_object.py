"""GetObject: proxy mode streams from the backend (bounded memory, single Range → 206);
presignedUrl mode answers 307 with a short-lived backend URL (Range too, unless proxyPartial),
signed for the request that will follow it. A client that hangs up mid-body is counted, not
logged as an error."""

from __future__ import annotations

from aiohttp import web

from .. import objects, ranges
from ..context import Call
from ..store import Follower

#: Sent by ``storage-proxy client-proxy``: it follows a 307 with a plain GET (only ``Range``).
PLAIN_FOLLOW = "X-Deltaview-Follow"


def follower(request: web.Request, redirect_signing: str) -> Follower | None:
    """Who will follow the 307. The stock SDK that follows one (object_store, behind deltalake
    and polars) re-sends the ``x-amz-content-sha256`` it signed for the view — and, depending
    on its version, the view's ``Host`` or not — and a strict S3 server (RGW) checks that header
    against a presigned URL. Such a request gets a URL signed for its header value and not for
    ``host``. Requests without the header (curl, browsers, presigned view URLs) and the client
    proxy follow with a plain GET."""
    if redirect_signing == "plain" or request.headers.get(PLAIN_FOLLOW) == "plain":
        return None
    sha = request.headers.get("x-amz-content-sha256")
    return Follower(sha) if sha else None


async def handle(call: Call) -> web.StreamResponse:
    view, request = call.view, call.request
    alias, rel, loc = call.table()
    table_view = await view.gate.authorize_read(alias, rel, call.principal)
    range_header = request.headers.get("Range")
    rewritten = await view.logs.lookup(alias, loc, rel, table_view)
    if rewritten is not None:
        return await objects.serve_bytes(call, rewritten, range_header)
    if view.cfg.get_mode == "presignedUrl" and not (range_header and view.cfg.proxy_partial):
        url = await view.store.presign_get(
            loc.bucket,
            loc.prefix + rel,
            view.cfg.presign_expiry,
            follower(request, view.cfg.redirect_signing),
        )
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
    except ConnectionError:
        # the client hung up: nothing to answer; aiohttp finishes a dead response quietly
        view.metrics.client_gone.inc()
    finally:
        download.close()
    return response
