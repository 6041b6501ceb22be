"""Snapshots of vfolders: ``/folder/snapshot``, ``/folder/snapshots``,
``/folder/snapshot/restore|delete|files``.

A native snapshot (CephFS) is taken or deleted at once.  What copies runs as a background task
(``GET /bgtask/{id}`` for its progress): by default the answer waits for it and carries its
result; with ``background`` it is 202 ``{"bgtask_id", "snapshot_id"}`` at once.  A restore is
always a task.  A volume that takes no snapshots answers ``not-supported`` (501).
"""

from __future__ import annotations

from typing import Any

import trafaret as t
from aiohttp import web

from ...core.snapshots import SnapshotInfo
from ...core.types import DirEntry
from ...services.access import Actor
from ...services.snapshots import Started
from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params

MANAGER = Actor.manager()
MAX_RESTORE_PATHS = 1000
_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}
_background = {t.Key("background", default=False): t.ToBool}
_snapshot = {t.Key("snapshot_id"): t.String()}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/folder/snapshot", create)
    router.add_get("/folder/snapshots", list_snapshots)
    router.add_post("/folder/snapshot/restore", restore)
    router.add_post("/folder/snapshot/delete", delete)
    router.add_post("/folder/snapshot/files", list_files)


async def _answer(
    request: web.Request, started: Started, background: bool, status: int = 200
) -> web.Response:
    headers = {"X-BgTask-ID": started.task_id}
    if background:
        body = {"bgtask_id": started.task_id, "snapshot_id": started.snapshot_id}
        return web.json_response(body, status=202, headers=headers)
    result = await services(request).snapshots.wait(started)
    return web.json_response(
        {**result, "bgtask_id": started.task_id}, status=status, headers=headers
    )


async def create(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict({**_vfolder, t.Key("name", default=None): t.Null | t.String(), **_background}),
    )
    made = await services(request).snapshots.create(
        MANAGER, params["volume"], params["vfid"], params["name"]
    )
    if isinstance(made, SnapshotInfo):
        return web.json_response(made.to_json(), status=201)
    return await _answer(request, made, params["background"], status=201)


async def list_snapshots(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    found = await services(request).snapshots.list_snapshots(
        MANAGER, params["volume"], params["vfid"]
    )
    return web.json_response({"snapshots": [s.to_json() for s in found]})


async def delete(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_vfolder, **_snapshot, **_background}))
    started = await services(request).snapshots.delete(
        MANAGER, params["volume"], params["vfid"], params["snapshot_id"]
    )
    if started is None:
        return web.Response(status=204)
    if params["background"]:
        return await _answer(request, started, True)
    await services(request).snapshots.wait(started)
    return web.Response(status=204, headers={"X-BgTask-ID": started.task_id})


async def restore(request: web.Request) -> web.Response:
    """``relpaths`` (files and directories; none: the whole vfolder), into place or ``into`` a
    new directory."""
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                **_snapshot,
                t.Key("relpaths", default=[]): t.List(
                    RelPathField(allow_root=False), max_length=MAX_RESTORE_PATHS
                ),
                t.Key("into", default=None): t.Null | RelPathField(allow_root=False),
                **_background,
            }
        ),
    )
    started = await services(request).snapshots.restore(
        MANAGER,
        params["volume"],
        params["vfid"],
        params["snapshot_id"],
        relpaths=tuple(params["relpaths"]),
        into=params["into"],
    )
    return await _answer(request, started, params["background"])


async def list_files(request: web.Request) -> web.Response:
    """The entries of one directory of a snapshot (``recursive``: all below it)."""
    params = await read_params(
        request,
        t.Dict(
            {
                **_vfolder,
                **_snapshot,
                t.Key("relpath", default="."): RelPathField(),
                t.Key("recursive", default=False): t.ToBool,
            }
        ),
    )
    entries = await services(request).snapshots.list_dir(
        MANAGER,
        params["volume"],
        params["vfid"],
        params["snapshot_id"],
        params["relpath"],
        recursive=params["recursive"],
    )
    return web.json_response({"items": [entry_json(e) for e in entries]})


def entry_json(entry: DirEntry) -> dict[str, Any]:
    """As ``/folder/file/list`` lists an entry, plus its path inside the snapshot."""
    return {**entry.to_json(), "path": entry.path}
