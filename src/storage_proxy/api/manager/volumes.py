"""``GET /volumes`` and ``GET /volume/hwinfo``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ..keys import services
from ..params import read_params


async def list_volumes(request: web.Request) -> web.Response:
    return web.json_response({"volumes": await services(request).vfolders.describe_volumes()})


async def hwinfo(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    return web.json_response(await services(request).vfolders.hwinfo(params["volume"]))
