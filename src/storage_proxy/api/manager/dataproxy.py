"""``POST /dataproxy/upload-location`` and ``/dataproxy/download-link`` (Flyte data-proxy style).

Thin: parse, one service call, shape.  ``expires_in`` is seconds or a duration such as ``15m``.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.units import Duration
from ..keys import services
from ..params import read_params

_name = t.String(max_length=255)

_upload = t.Dict(
    {
        t.Key("project"): _name,
        t.Key("domain"): _name,
        t.Key("content_md5"): t.String(),
        t.Key("filename", default=None): t.Null | t.String(allow_blank=True, max_length=1024),
        t.Key("filename_root", default=None): t.Null | t.String(allow_blank=True, max_length=255),
        t.Key("content_length", default=None): t.Null | t.ToInt(gte=0),
        t.Key("expires_in", default=None): t.Null | Duration(),
    }
)

_download = t.Dict(
    {
        t.Key("native_url"): t.String(),
        t.Key("expires_in", default=None): t.Null | Duration(),
    }
)


async def upload_location(request: web.Request) -> web.Response:
    p = await read_params(request, _upload)
    location = await services(request).dataproxy.upload_location(
        project=p["project"],
        domain=p["domain"],
        content_md5=p["content_md5"],
        filename=p["filename"] or None,
        filename_root=p["filename_root"] or None,
        content_length=p["content_length"],
        expires_in=p["expires_in"],
    )
    return web.json_response(location.to_json())


async def download_link(request: web.Request) -> web.Response:
    p = await read_params(request, _download)
    link = await services(request).dataproxy.download_link(p["native_url"], p["expires_in"])
    return web.json_response(link.to_json())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/dataproxy/upload-location", upload_location)
    router.add_post("/dataproxy/download-link", download_link)
