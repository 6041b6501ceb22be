"""Background tasks and periodic jobs on the manager API.

``GET /bgtask/{id}`` reports a task's state and progress, ``GET /bgtask/{id}/events`` streams it
as server-sent events (Backend.AI's event names: ``bgtask_updated``, ``bgtask_done``,
``bgtask_failed``, ``bgtask_cancelled``, then ``server_close``), ``DELETE /bgtask/{id}`` cancels.
``/jobs`` lists the periodic jobs, runs one now, and shows a job's last result; retention periods
of vfolders are read and set here too.
"""

from __future__ import annotations

import json
from typing import Any

import trafaret as t
from aiohttp import web

from ...services.bgtasks import BgTaskStatus, to_json
from ...services.jobs import orphans
from ..keys import services
from ..params import VFolderIDField, read_params

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


async def get_task(request: web.Request) -> web.Response:
    record = await services(request).bgtasks.get(request.match_info["task_id"])
    return web.json_response(to_json(record))


async def cancel_task(request: web.Request) -> web.Response:
    record = await services(request).bgtasks.cancel(request.match_info["task_id"])
    return web.json_response(to_json(record))


async def task_events(request: web.Request) -> web.StreamResponse:
    service = services(request).bgtasks
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
    runner = services(request).jobs
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
    task_id = await services(request).jobs.run_now(request.match_info["name"])
    return web.json_response({"bgtask_id": task_id}, status=202)


async def last_result(request: web.Request) -> web.Response:
    return await _last(request, request.match_info["name"])


async def last_orphans(request: web.Request) -> web.Response:
    return await _last(request, orphans.NAME)


async def _last(request: web.Request, name: str) -> web.Response:
    record = await services(request).jobs.last_result(name)
    if record is None:
        return web.json_response({"job": name, "bgtask_id": None, "result": None})
    body = {"job": name, "bgtask_id": record.id, "finished_at": record.finished_at}
    return web.json_response({**body, "result": record.result})


_vfolder = {t.Key("volume"): t.String(), t.Key("vfid"): VFolderIDField()}


async def get_retention(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict(_vfolder))
    days, volume_days = await services(request).vfolders.retention(params["volume"], params["vfid"])
    return web.json_response({"days": days, "volume_days": volume_days})


async def set_retention(request: web.Request) -> web.Response:
    """``days``: the vfolder's own period (0: exempt), or null to follow the volume's."""
    params = await read_params(
        request, t.Dict({**_vfolder, t.Key("days"): t.Null | t.ToFloat(gte=0)})
    )
    await services(request).vfolders.set_retention(params["volume"], params["vfid"], params["days"])
    return web.Response(status=204)
