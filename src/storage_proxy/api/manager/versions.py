"""Versions of files: a vfolder's setting (``/folder/versions``) and the versions of one file
(``/folder/file/versions``, ``/folder/file/version/restore|delete``)."""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...services.access import Actor
from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params

MANAGER = Actor.manager()
_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
_file = {**_vfolder, t.Key("relpath"): RelPathField(allow_root=False)}
_version = {**_file, t.Key("version_id"): t.String()}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/folder/versions", get_setting)
    router.add_put("/folder/versions", set_setting)
    router.add_post("/folder/file/versions", list_versions)
    router.add_post("/folder/file/version/restore", restore)
    router.add_post("/folder/file/version/delete", delete)


async def get_setting(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    keep = await services(request).versions.get_limit(MANAGER, params["volume"], params["vfid"])
    return web.json_response({"versions": keep})


async def set_setting(request: web.Request) -> web.Response:
    """``versions``: how many earlier contents of each file to keep (0: none)."""
    params = await read_params(request, t.Dict({**_vfolder, t.Key("versions"): t.ToInt(gte=0)}))
    await services(request).versions.set_limit(
        MANAGER, params["volume"], params["vfid"], params["versions"]
    )
    return web.Response(status=204)


async def list_versions(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_file))
    found = await services(request).versions.list_versions(
        MANAGER, params["volume"], params["vfid"], params["relpath"]
    )
    return web.json_response({"versions": [v.to_json() for v in found]})


async def restore(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_version))
    meta = await services(request).versions.restore(
        MANAGER, params["volume"], params["vfid"], params["relpath"], params["version_id"]
    )
    return web.json_response(meta.to_json(str(params["relpath"])))


async def delete(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_version))
    await services(request).versions.delete(
        MANAGER, params["volume"], params["vfid"], params["relpath"], params["version_id"]
    )
    return web.Response(status=204)
