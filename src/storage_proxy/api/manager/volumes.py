"""``GET /volumes``, ``/volume/hwinfo``, ``/volume/performance-metric`` and ``GET|PATCH
/volume/quota``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ..dialect import wire
from ..keys import services
from ..params import VFolderIDField, read_params
from ..problem import PlainAnswer


async def list_volumes(request: web.Request) -> web.Response:
    return web.json_response({"volumes": await services(request).vfolders.describe_volumes()})


async def hwinfo(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    return web.json_response(await services(request).vfolders.hwinfo(params["volume"]))


async def performance_metric(request: web.Request) -> web.Response:
    """``{"metric", "observed_at"}`` where a backend reports them; 400 unsupported otherwise."""
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    return web.json_response(await services(request).vfolders.performance_metric(params["volume"]))


_SIZE = t.ToInt(gte=0) | t.String()  # Backend.AI takes a binary size ("10g") too


async def get_volume_quota(request: web.Request) -> web.Response:
    """Backend.AI's per-vfolder quota of old, refused as deprecated (a vfolder's own limit is
    ``/folder/quota``; quota scopes are ``/quota-scope``)."""
    await read_params(
        request,
        t.Dict(
            {t.Key("volume"): t.String(), t.Key("vfid", default=None): t.Null | VFolderIDField()}
        ),
    )
    raise _deprecated(request, "get_quota (for individual vfolder) is a deprecated API")


async def set_volume_quota(request: web.Request) -> web.Response:
    await read_params(
        request,
        t.Dict(
            {
                t.Key("volume"): t.String(),
                t.Key("vfid", default=None): t.Null | VFolderIDField(),
                t.Key("size_bytes"): _SIZE,
            }
        ),
    )
    raise _deprecated(request, "set_quota (for individual vfolder) is a deprecated API")


def _deprecated(request: web.Request, reason: str) -> Exception:
    """A 400 with no body, the reason in the status line (as both Backend.AI releases answer)."""
    response = web.Response(status=400, reason=reason)
    if (media := wire(request).empty_body_type) is not None:
        response.content_type = media
    return PlainAnswer(response)
