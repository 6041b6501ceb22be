"""``GET /api/v1/storage/stats`` and ``/api/v1/storage/health`` with a user token.

Only what the caller may read: its vfolders and the volumes they are on.  ``?volume=&vfid=``
narrows the statistics to one vfolder and adds its largest directories.  Health answers 503 when
a volume the caller can see is down.  Thin: parse, one service call (``StatsService``).
"""

from __future__ import annotations

from aiohttp import web

from ...core.errors import InvalidParameter
from ...core.types import VFolderID
from ..keys import services
from .auth import require_user


async def stats(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid = request.query.get("volume"), request.query.get("vfid")
    if (volume is None) != (vfid is None):
        raise InvalidParameter("give both volume and vfid, or neither")
    only = (volume, VFolderID.parse(vfid)) if volume is not None and vfid is not None else None
    return web.json_response(await services(request).stats.stats(actor, only))


async def health(request: web.Request) -> web.Response:
    actor = require_user(request)
    body = await services(request).stats.health(actor)
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/storage/stats", stats)
    router.add_get("/api/v1/storage/health", health)
