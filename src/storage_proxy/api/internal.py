"""The internal listener (``[api.manager] internal-addr``): Prometheus ``/metrics`` and ``/health``.

``/health`` checks each dependency and names the one that is down (503), so a load balancer or an
operator sees at once whether the metadata store or a volume is the problem.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..services.facade import Services
from . import openapi
from .keys import DOOR, SERVICES, services


async def metrics(request: web.Request) -> web.Response:
    found = services(request)
    found.metrics.record_volumes(await found.health.volume_usages())
    body = found.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
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
    openapi.add_routes(app.router, openapi.internal_description)
    return app
