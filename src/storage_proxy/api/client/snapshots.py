"""Snapshots of a vfolder on the file API (``/api/v1/vfolders/…/snapshots``), with a user token.

RO on the vfolder lists snapshots and browses and downloads their files (read-only: a snapshot
has no way to be written) and reads its snapshot policy; RW also takes, deletes and restores
them and sets or clears the policy (``…/snapshot-policy``).  The answers wait for what
runs as a background task (there is no task API for users) and carry its result.
"""

from __future__ import annotations

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter
from ...core.paths import RelPath
from ...core.snapshots import SnapshotInfo
from ...core.types import DirEntry
from ..keys import services
from ..params import SNAPSHOT_POLICY_KEYS, json_object, read_params, snapshot_policy
from .auth import require_user
from .download import send, small_read
from .files_v1 import PREFIX, url_target

SNAPSHOTS = PREFIX + "/snapshots"
SNAPSHOT = SNAPSHOTS + "/{snapshot}"
POLICY = PREFIX + "/snapshot-policy"
MAX_RESTORE_PATHS = 1000
_TRUE = {"1", "true", "yes"}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(SNAPSHOTS, list_snapshots)
    router.add_post(SNAPSHOTS, create)
    router.add_delete(SNAPSHOT, delete)
    router.add_post(SNAPSHOT + "/restore", restore)
    router.add_get(SNAPSHOT + "/list", list_dir)
    router.add_get(SNAPSHOT + "/files/{path:.+}", download)
    router.add_get(POLICY, get_policy)
    router.add_put(POLICY, set_policy)
    router.add_delete(POLICY, clear_policy)


async def list_snapshots(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    found = await services(request).snapshots.list_snapshots(actor, volume, vfid)
    return web.json_response({"snapshots": [s.to_json() for s in found]})


async def create(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    name = (await json_object(request)).get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidParameter("name must be a string")
    snapshots = services(request).snapshots
    made = await snapshots.create(actor, volume, vfid, name)
    if isinstance(made, SnapshotInfo):
        return web.json_response(made.to_json(), status=201)
    result = await snapshots.wait(made)
    keys = ("snapshot_id", "name", "created", "size")
    return web.json_response({k: result.get(k) for k in keys}, status=201)


async def delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    snapshots = services(request).snapshots
    started = await snapshots.delete(actor, volume, vfid, request.match_info["snapshot"])
    if started is not None:
        await snapshots.wait(started)
    return web.Response(status=204)


async def restore(request: web.Request) -> web.Response:
    """``{"paths": [...], "into": "dir"}``: both optional (the whole vfolder, in place)."""
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    body = await json_object(request)
    raw = body.get("paths", [])
    if not isinstance(raw, list) or len(raw) > MAX_RESTORE_PATHS:
        raise InvalidParameter(f"paths must be a list of at most {MAX_RESTORE_PATHS} paths")
    relpaths = tuple(RelPath.parse(p, allow_root=False) for p in raw)
    into = body.get("into")
    target = None if into is None else RelPath.parse(into, allow_root=False)
    snapshots = services(request).snapshots
    started = await snapshots.restore(
        actor, volume, vfid, request.match_info["snapshot"], relpaths=relpaths, into=target
    )
    result = await snapshots.wait(started)
    return web.json_response(
        {
            "snapshot_id": started.snapshot_id,
            "paths": [str(p) for p in relpaths],
            "into": None if target is None else str(target),
            "files": result.get("files", 0),
            "bytes": result.get("bytes", 0),
        }
    )


async def list_dir(request: web.Request) -> web.Response:
    """One directory of the snapshot (``?path=``; ``recursive=true``: all below it)."""
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    relpath = RelPath.parse(request.query.get("path", ""))
    recursive = request.query.get("recursive", "").lower() in _TRUE
    entries = await services(request).snapshots.list_dir(
        actor, volume, vfid, request.match_info["snapshot"], relpath, recursive=recursive
    )
    return web.json_response({"files": [entry_json(e) for e in entries]})


def entry_json(e: DirEntry) -> dict[str, object]:
    return {
        "path": e.path,
        "size": e.stat.size,
        "modified": e.stat.modified.isoformat(),
        "type": e.type.value,
    }


async def download(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    archive = request.query.get("archive", "").lower() in _TRUE
    opened = await services(request).snapshots.open_download(
        actor,
        volume,
        vfid,
        request.match_info["snapshot"],
        relpath,
        archive=archive,
        read_up_to=small_read(request),
    )
    return await send(request, opened)


async def get_policy(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    view = await services(request).snapshot_policies.get(actor, volume, vfid)
    return web.json_response(view.to_json())


async def set_policy(request: web.Request) -> web.Response:
    """``{"every": "1h", "keep_last": 24, "keep_daily": 7}``"""
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    params = await read_params(request, t.Dict(SNAPSHOT_POLICY_KEYS), body_required=True)
    await services(request).snapshot_policies.set(actor, volume, vfid, snapshot_policy(params))
    return web.Response(status=204)


async def clear_policy(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    await services(request).snapshot_policies.set(actor, volume, vfid, None)
    return web.Response(status=204)
