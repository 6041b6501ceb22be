"""``GET /volumes`` and ``GET /volume/hwinfo``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ..keys import ROOT_CTX
from ..params import read_params


async def list_volumes(request: web.Request) -> web.Response:
    ctx = request.app[ROOT_CTX]
    items = []
    for name, volume in ctx.volumes.items():
        caps = await volume.get_capabilities()
        items.append(
            {
                "name": name,
                "backend": ctx.volumes.backend_of(name),
                "path": str(volume.mount_path),
                "fsprefix": volume.fsprefix,
                "capabilities": sorted(c.value for c in caps),
            }
        )
    return web.json_response({"volumes": items})


async def hwinfo(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    request.app[ROOT_CTX].volumes.get(params["volume"])  # 404 for an unknown volume
    return web.json_response({"status": "healthy", "status_info": None, "metadata": {}})
