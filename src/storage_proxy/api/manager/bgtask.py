"""Background tasks and periodic jobs on the manager API, plus the busy-vfolder write guard.

``GET /bgtask/{id}`` reports a task's state and progress, ``GET /bgtask/{id}/events`` streams it
as server-sent events (Backend.AI's event names: ``bgtask_updated``, ``bgtask_done``,
``bgtask_failed``, ``bgtask_cancelled``, then ``server_close``), ``DELETE /bgtask/{id}`` cancels.
``/jobs`` lists the periodic jobs, runs one now, and shows a job's last result.
"""

from __future__ import annotations

import json
from typing import Any

import trafaret as t
from aiohttp import web

from ...core.errors import InvalidParameter, VFolderNotFound
from ...core.types import VFolderID
from ...services.bgtasks import BgTaskStatus, to_json
from ...services.jobs import orphans
from ..keys import ROOT_CTX
from ..params import VFolderIDField, json_object, read_params
from ..problem import Handler
from ..written import mark_written

# Manager routes that write into the vfolder named by their ``volume`` and ``vfid`` parameters.
WRITE_ROUTES = frozenset(
    {
        "/folder/create",
        "/folder/file/mkdir",
        "/folder/file/rename",
        "/folder/file/move",
        "/folder/file/delete",
        "/folder/file/upload",
    }
)
_EVENT_NAMES = {
    BgTaskStatus.DONE: "bgtask_done",
    BgTaskStatus.FAILED: "bgtask_failed",
    BgTaskStatus.INTERRUPTED: "bgtask_failed",
    BgTaskStatus.CANCELLED: "bgtask_cancelled",
}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/bgtask/{task_id}", get_task)
    router.add_get("/bgtask/{task_id}/events", task_events)
    router.add_delete("/bgtask/{task_id}", cancel_task)
    router.add_get("/jobs", list_jobs)
    router.add_get("/jobs/orphans", last_orphans)
    router.add_get("/jobs/{name}", last_result)
    router.add_post("/jobs/{name}", run_job)
    router.add_get("/folder/retention", get_retention)
    router.add_put("/folder/retention", set_retention)


@web.middleware
async def busy_vfolder_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """409 for a write into a vfolder being cloned or deleted (the body is cached for the
    handler, which validates it properly; here a malformed one is simply let through)."""
    if request.method == "POST" and request.path in WRITE_ROUTES:
        data: dict[str, Any] = dict(request.query)
        try:
            data.update(await json_object(request))
            vfid = VFolderID.parse(data.get("vfid"))  # type: ignore[arg-type]
        except (ValueError, InvalidParameter):
            return await handler(request)
        if isinstance(data.get("volume"), str):
            await request.app[ROOT_CTX].bgtasks.ensure_writable(data["volume"], str(vfid))
            mark_written(request, data["volume"], vfid)
    return await handler(request)


async def get_task(request: web.Request) -> web.Response:
    record = await request.app[ROOT_CTX].bgtasks.get(request.match_info["task_id"])
    return web.json_response(to_json(record))


async def cancel_task(request: web.Request) -> web.Response:
    record = await request.app[ROOT_CTX].bgtasks.cancel(request.match_info["task_id"])
    return web.json_response(to_json(record))


async def task_events(request: web.Request) -> web.StreamResponse:
    service = request.app[ROOT_CTX].bgtasks
    task_id = request.match_info["task_id"]
    await service.get(task_id)  # 404 before the stream starts
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async for record in service.watch(task_id):
        name = _EVENT_NAMES.get(BgTaskStatus(record.status), "bgtask_updated")
        await _send(response, name, to_json(record))
    await _send(response, "server_close", {})
    await response.write_eof()
    return response


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


async def list_jobs(request: web.Request) -> web.Response:
    runner = request.app[ROOT_CTX].jobs
    items = []
    for job in runner.jobs.values():
        last = await runner.last_result(job.name)
        items.append(
            {
                "name": job.name,
                "interval": job.interval,
                "last_task_id": last.id if last else None,
                "last_finished_at": last.finished_at if last else None,
            }
        )
    return web.json_response({"jobs": items})


async def run_job(request: web.Request) -> web.Response:
    task_id = await request.app[ROOT_CTX].jobs.run_now(request.match_info["name"])
    return web.json_response({"bgtask_id": task_id}, status=202)


async def last_result(request: web.Request) -> web.Response:
    return await _last(request, request.match_info["name"])


async def last_orphans(request: web.Request) -> web.Response:
    return await _last(request, orphans.NAME)


async def _last(request: web.Request, name: str) -> web.Response:
    record = await request.app[ROOT_CTX].jobs.last_result(name)
    if record is None:
        return web.json_response({"job": name, "bgtask_id": None, "result": None})
    body = {"job": name, "bgtask_id": record.id, "finished_at": record.finished_at}
    return web.json_response({**body, "result": record.result})


_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}


async def get_retention(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    ctx = request.app[ROOT_CTX]
    own = await ctx.metadata.get_vfolder_retention(params["volume"])
    days = own.get(str(params["vfid"]))
    volume_days = ctx.config["jobs"]["retention"].get(params["volume"])
    return web.json_response({"days": days, "volume_days": volume_days})


async def set_retention(request: web.Request) -> web.Response:
    """``days``: the vfolder's own period (0: exempt), or null to follow the volume's."""
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("days"): t.Null | t.ToFloat(gte=0)})
    )
    ctx = request.app[ROOT_CTX]
    vfid = str(params["vfid"])
    if await ctx.metadata.get_vfolder(params["volume"], vfid) is None:
        raise VFolderNotFound(f"no vfolder {vfid} on volume {params['volume']!r}")
    await ctx.metadata.set_vfolder_retention(params["volume"], vfid, params["days"])
    return web.Response(status=204)
