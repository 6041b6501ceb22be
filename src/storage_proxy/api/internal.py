"""The internal listener (``[api.manager] internal-addr``): Prometheus ``/metrics`` and ``/health``.

``/health`` checks each dependency and names the one that is down (503), so a load balancer or an
operator sees at once whether the metadata store or a volume is the problem.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import openapi
from .keys import ROOT_CTX

if TYPE_CHECKING:
    from ..context import RootContext

CHECK_TIMEOUT = 5.0


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[ROOT_CTX]
    await ctx.metrics.refresh_volumes(ctx.volumes)
    return web.Response(body=ctx.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _check(probe: Any) -> dict[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except TimeoutError:
        return {"status": "down", "detail": f"no answer within {CHECK_TIMEOUT:.0f}s"}
    except Exception as e:
        return {"status": "down", "detail": f"{type(e).__name__}: {e}"}
    return {"status": "ok"}


async def health(request: web.Request) -> web.Response:
    ctx = request.app[ROOT_CTX]
    checks = {"metadata": await _check(ctx.metadata.list_vfolders("\0health"))}
    if ctx.redis is not None:
        checks["redis"] = await _check(ctx.redis.ping())
    for name, volume in ctx.volumes.items():
        checks[f"volume:{name}"] = await _check(volume.get_fs_usage())
    down = sorted(k for k, v in checks.items() if v["status"] != "ok")
    body = {"status": "ok" if not down else "degraded", "down": down, "checks": checks}
    return web.json_response(body, status=503 if down else 200)


def create_internal_app(ctx: RootContext) -> web.Application:
    app = web.Application()
    app[ROOT_CTX] = ctx
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    openapi.add_routes(app.router, openapi.internal_description)
    return app
