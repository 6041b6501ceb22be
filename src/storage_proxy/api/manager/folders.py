"""VFolder lifecycle and usage: ``/folder/create|delete|clone|mount|usage|used-bytes|fs-usage``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter
from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
# Extension: answer 202 {"bgtask_id"} at once instead of when the task has ended.
_background = {t.Key("background", default=False): t.ToBool}
_options = t.Dict(
    {t.Key("initial_max_size_for_quota_scope", optional=True): t.Null | t.ToInt(gte=0)}
).allow_extra("*")


async def create(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("mode", default=None): t.Null | t.ToInt(gte=0, lte=0o7777),
                t.Key("options", default=None): t.Null | _options,
                # Extensions: who owns it, for the permission checks of the client file API.
                t.Key("owner", default=None): t.Null | t.String(),
                t.Key("kind", default="user"): t.Enum("user", "group"),
            }
        ),
    )
    initial = (params["options"] or {}).get("initial_max_size_for_quota_scope")
    await services(request).vfolders.create(
        params["volume"],
        params["vfid"],
        mode=params["mode"],
        owner=params["owner"],
        kind=params["kind"],
        initial_scope_limit=initial,
    )
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    """Runs as a background task (the vfolder is ``deleting`` meanwhile); see _task_answer."""
    params = await read_params(request, t.Dict({**_vfolder, **_background}))
    task_id = await services(request).vfolders.start_delete(params["volume"], params["vfid"])
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
    task_id = await services(request).vfolders.start_clone(
        params["src_volume"], params["src_vfid"], params["dst_vfid"]
    )
    return await _task_answer(request, task_id, params["background"])


async def _task_answer(request: web.Request, task_id: str, background: bool) -> web.Response:
    """By default as Backend.AI 23.09 expects: 204 when the task is done, or the task's own error
    (its manager treats the answer as completion); the id is in ``X-BgTask-ID``.  With
    ``background``: 202 ``{"bgtask_id"}`` at once, to follow ``GET /bgtask/{id}``."""
    headers = {"X-BgTask-ID": task_id}
    if background:
        return web.json_response({"bgtask_id": task_id}, status=202, headers=headers)
    await services(request).vfolders.wait(task_id)
    return web.Response(status=204, headers=headers)


async def mount(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("subpath", default="."): RelPathField()})
    )
    vfolders = services(request).vfolders
    path = await vfolders.mount(params["volume"], params["vfid"], params["subpath"])
    return web.json_response({"path": str(path)})


async def usage(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    result = await services(request).vfolders.usage(params["volume"], params["vfid"])
    return web.json_response({"file_count": result.file_count, "used_bytes": result.used_bytes})


async def used_bytes(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    used = await services(request).vfolders.used_bytes(params["volume"], params["vfid"])
    return web.json_response({"used_bytes": used})


async def fs_usage(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({t.Key("volume"): t.String()}))
    result = await services(request).vfolders.fs_usage(params["volume"])
    return web.json_response(
        {"capacity_bytes": result.capacity_bytes, "used_bytes": result.used_bytes}
    )
