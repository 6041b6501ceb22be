"""Session tokens for clients: ``POST /folder/file/download`` and ``/folder/file/upload``.

Shaped as Backend.AI's: the manager asks, the daemon answers ``{"token"}``; the client then
calls the client API with ``?token=…``.  An upload session is created (and its declared size
reserved against the quota) when its token is issued.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...services.tokens import SessionClaims
from ..keys import ROOT_CTX
from ..params import RelPathField, VFolderIDField, read_params

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
    ctx = request.app[ROOT_CTX]
    volume = ctx.volumes.get(params["volume"])
    await volume.stat(params["vfid"], params["relpath"])  # 404 now, not when the client comes
    token = ctx.tokens.issue_session(
        SessionClaims(
            op="download",
            volume=params["volume"],
            vfid=str(params["vfid"]),
            relpath=str(params["relpath"]),
            archive=params["archive"],
        )
    )
    return web.json_response({"token": token})


async def upload_session(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_target, t.Key("size"): t.ToInt(gte=0)}))
    ctx = request.app[ROOT_CTX]
    session = await ctx.uploads.create(
        params["volume"], params["vfid"], params["relpath"], params["size"]
    )
    token = ctx.tokens.issue_session(
        SessionClaims(
            op="upload",
            volume=params["volume"],
            vfid=str(params["vfid"]),
            relpath=str(params["relpath"]),
            size=params["size"],
            session=session.id,
        )
    )
    return web.json_response({"token": token})
