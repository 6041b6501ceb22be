"""``GET /folder/audit``: a vfolder's recent audit entries; ``GET /events``: quota alerts as
server-sent events (``event: quota-threshold``), with a comment line as a heartbeat."""

from __future__ import annotations

import asyncio

import trafaret as t
from aiohttp import web

from ..keys import services
from ..params import VFolderIDField, read_params
from ..streams import write_chunk

HEARTBEAT = 15.0


async def recent(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                t.Key("volume"): t.String(),
                t.Key("vfid"): VFolderIDField(),
                t.Key("limit", default=100): t.ToInt(gte=1, lte=1000),
            }
        ),
    )
    entries = await services(request).vfolders.audit_entries(
        params["volume"], params["vfid"], params["limit"]
    )
    return web.json_response({"entries": entries})


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async with services(request).quotas.events() as stream:
        while True:
            try:
                frame = await asyncio.wait_for(stream.next_frame(), HEARTBEAT)
            except TimeoutError:
                frame = b": keep-alive\n\n"
            await write_chunk(request, response, frame)
