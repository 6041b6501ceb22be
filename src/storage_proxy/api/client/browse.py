"""What the web file browser needs beyond the file API: directory pages and download links.

- ``GET …/dir?path=&marker=&limit=``: the direct children of one directory, in pages (RO).
- ``POST …/links`` ``{"path", "expires_in"}``: a signed download link (RO): a file, or a
  directory as a zip, for whoever holds the link until it expires.

Thin: parse, one service call (:mod:`...services.browse`), shape.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...errors import InvalidParameter
from ...metadata.store import Permission
from ...paths import RelPath
from ...services import browse
from ...types import VFolderID
from ...units import Duration
from ...volumes.abc import AbstractVolume
from ..keys import ROOT_CTX
from ..params import json_object
from .auth import require_user
from .files_v1 import PREFIX

_link = t.Dict(
    {
        t.Key("path"): t.String(allow_blank=True, max_length=4096),
        t.Key("expires_in", default=None): t.Null | Duration(),
    }
)


async def _readable(request: web.Request) -> tuple[AbstractVolume, VFolderID]:
    ctx = request.app[ROOT_CTX]
    user = require_user(request)
    m = request.match_info
    vfid = VFolderID.parse(f"{m['scope']}/{m['folder']}")
    await ctx.permissions.require(user, m["volume"], vfid, Permission.RO)
    return ctx.volumes.get(m["volume"]), vfid


def _limit(raw: str | None) -> int:
    if raw is None:
        return browse.DEFAULT_PAGE
    if not raw.isdigit():
        raise InvalidParameter("limit must be a positive integer")
    return int(raw)


async def list_directory(request: web.Request) -> web.Response:
    volume, vfid = await _readable(request)
    q = request.query
    page = await browse.list_directory(
        volume,
        vfid,
        RelPath.parse(q.get("path", "")),
        marker=q.get("marker", ""),
        limit=_limit(q.get("limit")),
    )
    return web.json_response(page.to_json())


async def create_link(request: web.Request) -> web.Response:
    volume, vfid = await _readable(request)
    try:
        p = _link.check(await json_object(request))
    except t.DataError as e:
        raise InvalidParameter("invalid link request", errors=e.as_dict(value=True)) from None
    ctx = request.app[ROOT_CTX]
    link = await browse.download_link(
        ctx.tokens,
        volume,
        vfid,
        RelPath.parse(p["path"]),
        expires_in=p["expires_in"],
        cap=ctx.config["storage-proxy"]["download-link-max-expire"],
        base_url=ctx.dataproxy.client_url,
    )
    return web.json_response(link.to_json(), status=201)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PREFIX + "/dir", list_directory)
    router.add_post(PREFIX + "/links", create_link)
