"""Snapshots of vfolders: ``/folder/snapshot``, ``/folder/snapshots``,
``/folder/snapshot/restore|delete|files``, and the policies that take them
(``GET|PUT|DELETE /folder/snapshot/policy``, of a vfolder or a quota scope).

A native snapshot (CephFS) is taken or deleted at once.  What copies runs as a background task
(``GET /bgtask/{id}`` for its progress): by default the answer waits for it and carries its
result; with ``background`` it is 202 ``{"bgtask_id", "snapshot_id"}`` at once.  A restore is
always a task.  A volume that takes no snapshots answers ``not-supported`` (501).
"""

from __future__ import annotations

from typing import Any

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter
from ...core.snapshots import SnapshotInfo
from ...core.types import DirEntry, QuotaScopeID, VFolderID
from ...services.access import Actor
from ...services.snapshots import Started
from ..keys import services
from ..params import (
    SNAPSHOT_POLICY_KEYS,
    QuotaScopeIDField,
    RelPathField,
    VFolderIDField,
    read_params,
    snapshot_policy,
)

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
    router.add_get("/folder/snapshot/policy", get_policy)
    router.add_put("/folder/snapshot/policy", set_policy)
    router.add_delete("/folder/snapshot/policy", clear_policy)


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


# -- policies: of a vfolder (vfid) or of a quota scope (qsid) ---------------------------------
_policy_target = {
    t.Key("volume"): t.String(),
    t.Key("vfid", optional=True): VFolderIDField(),
    t.Key("qsid", optional=True): QuotaScopeIDField(),
}


def _target(params: dict[str, Any]) -> VFolderID | QuotaScopeID:
    if ("vfid" in params) == ("qsid" in params):
        raise InvalidParameter("name a vfolder (vfid) or a quota scope (qsid), one of the two")
    return params["vfid"] if "vfid" in params else params["qsid"]  # type: ignore[no-any-return]


async def get_policy(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_policy_target))
    view = await services(request).snapshot_policies.get(MANAGER, params["volume"], _target(params))
    return web.json_response(view.to_json())


async def set_policy(request: web.Request) -> web.Response:
    """``every`` (a duration: "1h"), ``keep_last`` and/or ``keep_daily``."""
    params = await read_params(request, t.Dict({**_policy_target, **SNAPSHOT_POLICY_KEYS}))
    await services(request).snapshot_policies.set(
        MANAGER, params["volume"], _target(params), snapshot_policy(params)
    )
    return web.Response(status=204)


async def clear_policy(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_policy_target))
    await services(request).snapshot_policies.set(MANAGER, params["volume"], _target(params), None)
    return web.Response(status=204)
