"""VFolder lifecycle and usage: ``/folder/create|delete|clone|mount|usage|used-bytes|fs-usage``
and ``/folder/metadata``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter, InvalidPath, VFolderNotFound
from ...core.paths import RelPath
from ..dialect import wire
from ..keys import services
from ..params import VFolderIDField, read_params
from .wire import plain

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
    return await _task_answer(request, task_id, params["background"], started=202)


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
    return await _task_answer(request, task_id, params["background"], started=200)


async def _task_answer(
    request: web.Request, task_id: str, background: bool, *, started: int
) -> web.Response:
    """26.09: ``{"bgtask_id"}`` at once (``started``: 26.9.6's status for this route; follow the
    task with ``GET /bgtask/{id}``).  23.09: 204 when the task is done, or the task's own error
    (that manager takes the answer as completion), unless ``background`` asks for 202
    ``{"bgtask_id"}`` at once.  The id is in ``X-BgTask-ID`` either way."""
    headers = {"X-BgTask-ID": task_id}
    if wire(request).task_ids:
        return web.json_response({"bgtask_id": task_id}, status=started, headers=headers)
    if background:
        return web.json_response({"bgtask_id": task_id}, status=202, headers=headers)
    await services(request).vfolders.wait(task_id)
    return web.Response(status=204, headers=headers)


async def mount(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("subpath", default="."): t.String(allow_blank=True)})
    )
    vfolders = services(request).vfolders
    vfid = str(params["vfid"])
    try:
        subpath = RelPath.parse(params["subpath"])
        path = await vfolders.mount(params["volume"], params["vfid"], subpath)
    except VFolderNotFound:  # 400 {"msg", "vfid"} in both Backend.AI releases
        raise plain(
            {"msg": "VFolder not found", "vfid": vfid, "code": "vfolder-not-found"}
        ) from None
    except InvalidPath:
        raw = str(params["subpath"])
        raise plain(
            {"msg": "Invalid vfolder subpath", "vfid": vfid, "subpath": raw, "code": "invalid-path"}
        ) from None
    return web.json_response({"path": str(path)})


async def usage(request: web.Request) -> web.Response:
    """Every entry and every entry's bytes, directories too (as both Backend.AI releases count
    them)."""
    params = await read_params(request, t.Dict(_vfolder))
    result = await services(request).vfolders.usage(params["volume"], params["vfid"])
    count = result.file_count + result.dir_count
    used = result.used_bytes + result.dir_bytes
    return web.json_response({"file_count": count, "used_bytes": used})


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


async def get_metadata(request: web.Request) -> web.Response:
    """Backend.AI's vfolder metadata route, which answers ``{"status": "ok"}`` and nothing more
    (kept for managers that call it); a vfolder that does not exist is a 404 here."""
    params = await read_params(request, t.Dict(_vfolder))
    await services(request).vfolders.registered(params["volume"], params["vfid"])
    return web.json_response({"status": "ok"})


async def set_metadata(request: web.Request) -> web.Response:
    """Backend.AI declares ``payload`` as bytes, which a JSON body cannot carry: every manager
    request is refused there ("value is not a bytes string"), and here alike — the route is a
    vestige, kept so that a manager calling it gets the answer it always got."""
    params = await read_params(request, t.Dict({**_vfolder, t.Key("payload"): t.Bytes()}))
    await services(request).vfolders.registered(params["volume"], params["vfid"])
    return web.json_response({"status": "ok"})
