"""``PUT`` / ``GET`` / ``HEAD /signed/<token>``: signed data-proxy locations on POSIX volumes.

The token (issued by ``POST /dataproxy/upload-location`` or ``/download-link``) is the only
credential; the service checks expiry, method, Content-MD5 and length.  Downloads use sendfile and
answer ``Range``.
"""

from __future__ import annotations

from aiohttp import web

from ..keys import ROOT_CTX
from ..streams import body_chunks
from .download import send_local

_BODY_CHUNK = 1 << 20


async def put_signed(request: web.Request) -> web.Response:
    service = request.app[ROOT_CTX].dataproxy
    claims = service.verify(request.match_info["token"], "PUT")
    area = service.local_area(str(claims["vol"]))
    md5 = await area.receive(
        claims,
        request.headers.get("Content-MD5"),
        request.content_length,
        body_chunks(request),
    )
    return web.Response(status=201, headers={"ETag": f'"{md5}"'})


async def get_signed(request: web.Request) -> web.StreamResponse:
    service = request.app[ROOT_CTX].dataproxy
    claims = service.verify(request.match_info["token"], "GET")
    key = str(claims["key"])
    local = await service.local_area(str(claims["vol"])).local_file(key)
    with local:
        return await send_local(request, local, key.rsplit("/", 1)[-1])


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_put("/signed/{token}", put_signed)
    router.add_get("/signed/{token}", get_signed)  # HEAD is answered too
