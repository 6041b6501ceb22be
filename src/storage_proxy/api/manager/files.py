"""File operations inside a vfolder: ``/folder/file/mkdir|list|rename|move|delete``."""

from __future__ import annotations

import asyncio

import trafaret as t
from aiohttp import web

from ...core.errors import StorageProxyError
from ..keys import ROOT_CTX
from ..params import RelPathField, VFolderIDField, read_params

_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
MAX_MKDIR_BATCH = 50


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
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    relpaths = params["relpath"]

    async def make(rel):  # type: ignore[no-untyped-def]
        await volume.mkdir(
            params["vfid"], rel, parents=params["parents"], exist_ok=params["exist_ok"]
        )

    if not isinstance(relpaths, list):
        await make(relpaths)
        return web.Response(status=204)
    outcomes = await asyncio.gather(*(make(rel) for rel in relpaths), return_exceptions=True)
    success, failed = [], []
    for rel, outcome in zip(relpaths, outcomes, strict=True):
        if isinstance(outcome, StorageProxyError):
            failed.append({"item": str(rel), "msg": outcome.detail, "code": outcome.code})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            success.append({"item": str(rel), "msg": None})
    status = 200 if not failed else (207 if success else 422)
    return web.json_response({"results": {"success": success, "failed": failed}}, status=status)


async def list_files(request: web.Request) -> web.Response:
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("relpath", default="."): RelPathField()})
    )
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    items = [e.to_json() async for e in volume.scandir(params["vfid"], params["relpath"])]
    return web.json_response({"items": items})


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
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    await volume.rename_file(params["vfid"], params["relpath"], params["new_name"])
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
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    await volume.move_file(params["vfid"], params["src_relpath"], params["dst_relpath"])
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
    volume = request.app[ROOT_CTX].volumes.get(params["volume"])
    await volume.delete_files(params["vfid"], params["relpaths"], recursive=params["recursive"])
    return web.json_response({"status": "ok"})
