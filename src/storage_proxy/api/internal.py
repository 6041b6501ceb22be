"""The internal listener (``[api.manager] internal-addr``): Prometheus ``/metrics``, ``/health``,
``/livez`` and ``/readyz``.

Each checks the dependencies and names the one that is down, so a load balancer or an operator
sees at once whether the metadata store, Redis or a volume is the problem.  ``/livez`` and
``/readyz`` answer 503 when a dependency they gate on is down; ``/health`` answers as
storage-proxy 26.9.6's does (always 200, ``"degraded"``) in the 26.09 dialect, and as this
daemon's always did (503 naming what is down) in the 23.09 one.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..services.facade import Services
from ..services.health import Gating
from . import openapi
from .dialect import wire
from .keys import DOOR, SERVICES, services
from .manager.health import connectivity_answer, livez, readyz


async def metrics(request: web.Request) -> web.Response:
    found = services(request)
    found.metrics.record_volumes(await found.health.volume_usages())
    body = found.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    if wire(request).health_checks:
        return await connectivity_answer(request, Gating.READINESS, gate=False)
    checks = await services(request).health.checks()
    down = sorted(k for k, v in checks.items() if v["status"] != "ok")
    body = {"status": "ok" if not down else "degraded", "down": down, "checks": checks}
    return web.json_response(body, status=503 if down else 200)


def create_internal_app(services: Services) -> web.Application:
    app = web.Application()
    app[SERVICES] = services
    app[DOOR] = "internal"
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    openapi.add_routes(app.router, openapi.internal_description)
    return app
