"""Session tokens for clients: ``POST /folder/file/download`` and ``/folder/file/upload``.

Shaped as Backend.AI's: the manager asks, the daemon answers ``{"token"}``; the client then
calls the client API with ``?token=…``.  An upload session is created (and its declared size
reserved against the quota) when its token is issued.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params
from .files import MANAGER

_target = {
    t.Key("volume"): t.String(),
    t.Key("vfid"): VFolderIDField(),
    t.Key("relpath"): RelPathField(),
}


async def download_session(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_target,
                t.Key("archive", default=False): t.ToBool,
                t.Key("unmanaged_path", default=None): t.Null | t.String(),
            }
        ),
    )
    token = await services(request).transfers.download_token(
        MANAGER, params["volume"], params["vfid"], params["relpath"], archive=params["archive"]
    )
    return web.json_response({"token": token})


async def upload_session(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_target, t.Key("size"): t.ToInt(gte=0)}))
    token = await services(request).transfers.upload_token(
        MANAGER, params["volume"], params["vfid"], params["relpath"], params["size"]
    )
    return web.json_response({"token": token})
