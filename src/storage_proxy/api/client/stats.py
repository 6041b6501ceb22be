"""``GET /api/v1/storage/stats`` and ``/api/v1/storage/health`` with a user token.

Only what the caller may read: its vfolders and the volumes they are on.  ``?volume=&vfid=``
narrows the statistics to one vfolder and adds its largest directories.  Health answers 503 when
a volume the caller can see is down.  Thin: parse, one service call (:mod:`...services.stats`).
"""

from __future__ import annotations

from aiohttp import web

from ...errors import InvalidParameter
from ...services.stats import StatsDeps, storage_health, storage_stats
from ...types import VFolderID
from ..keys import ROOT_CTX
from .auth import require_user


def _deps(request: web.Request) -> StatsDeps:
    ctx = request.app[ROOT_CTX]
    return StatsDeps(ctx.permissions, ctx.volumes, ctx.usage, ctx.metadata)


async def stats(request: web.Request) -> web.Response:
    user = require_user(request)
    volume, vfid = request.query.get("volume"), request.query.get("vfid")
    if (volume is None) != (vfid is None):
        raise InvalidParameter("give both volume and vfid, or neither")
    only = (volume, VFolderID.parse(vfid)) if volume is not None and vfid is not None else None
    return web.json_response(await storage_stats(_deps(request), user, only))


async def health(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await storage_health(_deps(request), user)
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/storage/stats", stats)
    router.add_get("/api/v1/storage/health", health)
