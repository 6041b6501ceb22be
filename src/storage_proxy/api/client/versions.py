"""Versions of files on the file API (``/api/v1/vfolders/…/versions/{path}`` and
``…/version/{id}/{path}``), with a user token: RO lists and downloads them, RW restores one (it
becomes the current file, the current one a version), RWD deletes one."""

from __future__ import annotations

from aiohttp import web

from ..keys import services
from .auth import require_user
from .download import send, small_read
from .files_v1 import PREFIX, url_target

VERSION = PREFIX + "/version/{version}/{path:.+}"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PREFIX + "/versions/{path:.+}", list_versions)
    router.add_get(VERSION, download)
    router.add_post(VERSION, restore)
    router.add_delete(VERSION, delete)


async def list_versions(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    found = await services(request).versions.list_versions(actor, volume, vfid, relpath)
    return web.json_response({"path": str(relpath), "versions": [v.to_json() for v in found]})


async def download(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    _, opened = await services(request).versions.open_download(
        actor,
        volume,
        vfid,
        relpath,
        request.match_info["version"],
        read_up_to=small_read(request),
    )
    return await send(request, opened)


async def restore(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    meta = await services(request).versions.restore(
        actor, volume, vfid, relpath, request.match_info["version"]
    )
    return web.json_response(meta.to_json(str(relpath)))


async def delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    await services(request).versions.delete(
        actor, volume, vfid, relpath, request.match_info["version"]
    )
    return web.Response(status=204)
