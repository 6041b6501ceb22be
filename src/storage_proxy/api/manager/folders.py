"""VFolder lifecycle and usage: ``/folder/create|delete|clone|mount|usage|used-bytes|fs-usage``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter, QuotaScopeNotFound
from ...core.types import QuotaConfig
from ...services.jobs.vfolders import start_clone, start_delete
from ...volumes.abc import DEFAULT_VFOLDER_MODE
from ..keys import ROOT_CTX
from ..params import RelPathField, VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
# Extension: answer 202 {"bgtask_id"} at once instead of when the task has ended.
_background = {t.Key("background", default=False): t.ToBool}


async def create(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("mode", default=None): t.Null | t.ToInt(gte=0, lte=0o7777),
                t.Key("options", default=None): t.Null | t.Dict().allow_extra("*"),
                # Extensions: who owns it, for the permission checks of the client file API.
                t.Key("owner", default=None): t.Null | t.String(),
                t.Key("kind", default="user"): t.Enum("user", "group"),
            }
        ),
    )
    ctx = request.app[ROOT_CTX]
    volume = ctx.volumes.get(params["volume"])
    vfid = params["vfid"]
    mode = DEFAULT_VFOLDER_MODE if params["mode"] is None else params["mode"]
    try:
        await volume.create_vfolder(vfid, mode=mode)
    except QuotaScopeNotFound:
        # As in Backend.AI: the first vfolder of a scope creates the scope, optionally with a limit.
        initial = (params["options"] or {}).get("initial_max_size_for_quota_scope")
        config = QuotaConfig(int(initial)) if initial else None
        if not await volume.quota_model.quota_scope_exists(vfid.quota_scope_id):
            await volume.quota_model.create_quota_scope(vfid.quota_scope_id, config)
        await volume.create_vfolder(vfid, mode=mode)
    if params["owner"] is not None:
        await ctx.metadata.update_vfolder(
            params["volume"], str(vfid), owner=params["owner"], kind=params["kind"]
        )
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    """Runs as a background task (the vfolder is ``deleting`` meanwhile); see _task_answer."""
    params = await read_params(request, t.Dict({**_vfolder, **_background}))
    ctx = request.app[ROOT_CTX]
    volume = ctx.volumes.get(params["volume"])
    task_id = await start_delete(ctx.bgtasks, volume, params["vfid"])
    return await _task_answer(request, task_id, params["background"])


async def clone(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                t.Key("src_volume"): t.String(),
                t.Key("src_vfid"): VFolderIDField(),
                t.Key("dst_volume", default=None): t.Null | t.String(),
                t.Key("dst_vfid"): VFolderIDField(),
                t.Key("options", default=None): t.Null | t.Dict().allow_extra("*"),
                **_background,
            }
        ),
    )
    if params["dst_volume"] not in (None, params["src_volume"]):
        raise InvalidParameter("cloning across volumes is not supported; clone within one volume")
    ctx = request.app[ROOT_CTX]
    volume = ctx.volumes.get(params["src_volume"])
    task_id = await start_clone(ctx.bgtasks, volume, params["src_vfid"], params["dst_vfid"])
    return await _task_answer(request, task_id, params["background"])


async def _task_answer(request: web.Request, task_id: str, background: bool) -> web.Response:
    """By default as Backend.AI 23.09 expects: 204 when the task is done, or the task's own error
    (its manager treats the answer as completion); the id is in ``X-BgTask-ID``.  With
    ``background``: 202 ``{"bgtask_id"}`` at once, to follow ``GET /bgtask/{id}``."""
    headers = {"X-BgTask-ID": task_id}
    if background:
        return web.json_response({"bgtask_id": task_id}, status=202, headers=headers)
    await request.app[ROOT_CTX].bgtasks.wait(task_id)
    return web.Response(status=204, headers=headers)


async def mount(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("subpath", default="."): RelPathField()})
    )
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    path = await volume.get_vfolder_mount(params["vfid"], params["subpath"])
    return web.json_response({"path": str(path)})


async def usage(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    result = await request.app[ROOT_CTX].usage.get(params["volume"], params["vfid"])
    return web.json_response({"file_count": result.file_count, "used_bytes": result.used_bytes})


async def used_bytes(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    return web.json_response({"used_bytes": await volume.get_used_bytes(params["vfid"])})


async def fs_usage(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    result = await volume.get_fs_usage()
    return web.json_response(
        {"capacity_bytes": result.capacity_bytes, "used_bytes": result.used_bytes}
    )
