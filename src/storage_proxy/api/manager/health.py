"""Health routes (no token): for a load balancer, Kubernetes probes and the manager's status probe.

``/`` and ``/status`` say who answers.  ``/health``, ``/livez`` and ``/readyz`` answer as
storage-proxy 26.9.6 does (its ``HealthResponse``): ``/health`` lists every dependency and stays
200 (``"degraded"`` in the body when one is down: it informs, it does not gate), ``/livez`` and
``/readyz`` answer 503 when a dependency they gate on is down (see ``services.health``).  In the
23.09 dialect ``/health`` answers as ``/status``, as this daemon always did; the internal
listener serves the same three routes.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from aiohttp import web

from ... import __version__
from ...services.health import Gating
from ..dialect import wire
from ..keys import services


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "status": "ok",
            "type": wire(request).status_type,
            "storage-proxy": __version__,
            "pid": os.getpid(),
        }
    )


async def health(request: web.Request) -> web.Response:
    if not wire(request).health_checks:
        return await status(request)
    return await connectivity_answer(request, Gating.READINESS, gate=False)


async def livez(request: web.Request) -> web.Response:
    return await connectivity_answer(request, Gating.LIVENESS, gate=True)


async def readyz(request: web.Request) -> web.Response:
    return await connectivity_answer(request, Gating.READINESS, gate=True)


async def connectivity_answer(request: web.Request, gating: Gating, *, gate: bool) -> web.Response:
    """The 26.9.6 body; ``gate``: 503 (status ``"error"``) when a check fails, else 200 with
    ``"degraded"``."""
    checks = await services(request).health.connectivity(gating)
    healthy = all(c.healthy for c in checks)
    word = "ok" if healthy else ("error" if gate else "degraded")
    body = {
        "status": word,
        "version": __version__,
        "component": "storage-proxy",
        "connectivity": {
            "overall_healthy": healthy,
            "connectivity_checks": [c.to_json() for c in checks],
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        # ours: which dependency is down, by the names this daemon's own /health uses
        "down": sorted(f"{c.service_group}:{c.component_id}" for c in checks if not c.healthy),
    }
    return web.json_response(body, status=503 if gate and not healthy else 200)
