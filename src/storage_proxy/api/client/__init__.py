"""The client-facing API: downloads, tus uploads, whole-file PUTs (and the user file API)."""

from __future__ import annotations

from aiohttp import web

from ... import __version__
from ...services.facade import Services
from .. import openapi
from ..front import front_door, on_prepare
from ..keys import DOOR, RELAYS, SERVICES
from ..relay import Relays
from . import (
    archive,
    batch,
    browse,
    download,
    files_v1,
    signed,
    snapshots,
    stats,
    tus,
    ui,
    versions,
)

READ_BUFSIZE = 2 << 20


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "type": "client-facing", "storage-proxy": __version__}
    )


async def _close_relays(app: web.Application) -> None:
    app[RELAYS].close()


def create_client_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[front_door(services.metrics, (tus.TUS_PREFIX, tus.tus_headers))],
        client_max_size=1 << 20,  # bodies that matter are streamed, never read whole
        # Let the socket keep receiving while a batch goes to disk (aiohttp pauses reading once
        # twice this much is buffered; its 64 KiB default stalls the network on every write).
        handler_args={"read_bufsize": READ_BUFSIZE},
    )
    app[SERVICES] = services
    app[DOOR] = "client"
    app[RELAYS] = Relays(services.settings.relay_threads)
    app.on_cleanup.append(_close_relays)
    app.on_response_prepare.append(on_prepare(services.metrics))
    r = app.router
    r.add_get("/", status)
    r.add_get("/status", status)
    r.add_get("/download", download.download)  # HEAD is answered too
    r.add_get("/download-archive", archive.download_archive)
    tus.add_routes(r)
    files_v1.add_routes(r)
    batch.add_routes(r)
    snapshots.add_routes(r)
    versions.add_routes(r)
    signed.add_routes(r)
    browse.add_routes(r)
    stats.add_routes(r)
    ui.add_routes(app)
    openapi.add_routes(r, openapi.client_description)
    return app
