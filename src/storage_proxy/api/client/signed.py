"""``PUT`` / ``GET`` / ``HEAD /signed/<token>``: signed data-proxy locations the daemon serves.

The token (issued by ``POST /dataproxy/upload-location`` or ``/download-link``) is the only
credential; the service checks expiry, method, Content-MD5 and length.  Downloads answer
``Range`` as every download does.
"""

from __future__ import annotations

from aiohttp import web

from ...core import caller
from ..keys import services
from ..streams import body_chunks
from .download import send


async def put_signed(request: web.Request) -> web.Response:
    caller.identify("token:signed")
    md5 = await services(request).dataproxy.receive(
        request.match_info["token"],
        request.headers.get("Content-MD5"),
        request.content_length,
        body_chunks(request),
    )
    return web.Response(status=201, headers={"ETag": f'"{md5}"'})


async def get_signed(request: web.Request) -> web.StreamResponse:
    caller.identify("token:signed")
    opened = await services(request).dataproxy.open(request.match_info["token"])
    return await send(request, opened)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_put("/signed/{token}", put_signed)
    router.add_get("/signed/{token}", get_signed)  # HEAD is answered too
