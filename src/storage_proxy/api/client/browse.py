"""What the web file browser needs beyond the file API: directory pages and download links.

- ``GET …/dir?path=&marker=&limit=``: the direct children of one directory, in pages (RO).
- ``POST …/links`` ``{"path", "expires_in"}``: a signed download link (RO): a file, or a
  directory as a zip, for whoever holds the link until it expires.

Thin: parse, one service call (:class:`...services.browse.BrowseService`), shape.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter
from ...core.paths import RelPath
from ...core.units import Duration
from ...services import browse
from ..keys import services
from ..params import json_object
from .auth import require_user
from .files_v1 import PREFIX, url_target

_link = t.Dict(
    {
        t.Key("path"): t.String(allow_blank=True, max_length=4096),
        t.Key("expires_in", default=None): t.Null | Duration(),
    }
)


def _limit(raw: str | None) -> int:
    if raw is None:
        return browse.DEFAULT_PAGE
    if not raw.isdigit():
        raise InvalidParameter("limit must be a positive integer")
    return int(raw)


async def list_directory(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    q = request.query
    page = await services(request).browse.directory(
        actor,
        volume,
        vfid,
        RelPath.parse(q.get("path", "")),
        marker=q.get("marker", ""),
        limit=_limit(q.get("limit")),
    )
    return web.json_response(page.to_json())


async def create_link(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    try:
        p = _link.check(await json_object(request))
    except t.DataError as e:
        raise InvalidParameter("invalid link request", errors=e.as_dict(value=True)) from None
    link = await services(request).browse.link(
        actor, volume, vfid, RelPath.parse(p["path"]), p["expires_in"]
    )
    return web.json_response(link.to_json(), status=201)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PREFIX + "/dir", list_directory)
    router.add_post(PREFIX + "/links", create_link)
