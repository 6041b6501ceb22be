"""File operations inside a vfolder: ``/folder/file/mkdir|list|rename|move|delete``."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...services.access import Actor
from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
MAX_MKDIR_BATCH = 50
MANAGER = Actor.manager()


async def mkdir(request: web.Request) -> web.Response:
    """One path (204, as in 23.09) or a list of up to 50 (per-item results, as later releases)."""
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpath"): RelPathField(allow_root=False)
                | t.List(RelPathField(allow_root=False), min_length=1, max_length=MAX_MKDIR_BATCH),
                t.Key("parents", default=True): t.ToBool,
                t.Key("exist_ok", default=False): t.ToBool,
            }
        ),
    )
    single = not isinstance(params["relpath"], list)
    relpaths = [params["relpath"]] if single else params["relpath"]
    outcomes = await services(request).files.mkdir(
        MANAGER,
        params["volume"],
        params["vfid"],
        relpaths,
        parents=params["parents"],
        exist_ok=params["exist_ok"],
    )
    if single:
        if outcomes[0] is not None:
            raise outcomes[0]
        return web.Response(status=204)
    success, failed = [], []
    for rel, error in zip(relpaths, outcomes, strict=True):
        if error is None:
            success.append({"item": str(rel), "msg": None})
        else:
            failed.append({"item": str(rel), "msg": error.detail, "code": error.code})
    status = 200 if not failed else (207 if success else 422)
    return web.json_response({"results": {"success": success, "failed": failed}}, status=status)


async def list_files(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("relpath", default="."): RelPathField()})
    )
    entries = await services(request).files.list_dir(
        MANAGER, params["volume"], params["vfid"], params["relpath"]
    )
    return web.json_response({"items": [e.to_json() for e in entries]})


async def rename(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpath"): RelPathField(allow_root=False),
                t.Key("new_name"): t.String(),
                t.Key("is_dir", default=False): t.ToBool,  # ignored, as by the reference
            }
        ),
    )
    await services(request).files.rename(
        MANAGER, params["volume"], params["vfid"], params["relpath"], params["new_name"]
    )
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("src_relpath"): RelPathField(allow_root=False),
                t.Key("dst_relpath"): RelPathField(allow_root=False),
            }
        ),
    )
    await services(request).files.move(
        MANAGER, params["volume"], params["vfid"], params["src_relpath"], params["dst_relpath"]
    )
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                t.Key("relpaths"): t.List(RelPathField(allow_root=False), min_length=1),
                t.Key("recursive", default=False): t.ToBool,
            }
        ),
    )
    await services(request).files.delete(
        MANAGER, params["volume"], params["vfid"], params["relpaths"], recursive=params["recursive"]
    )
    return web.json_response({"status": "ok"})
