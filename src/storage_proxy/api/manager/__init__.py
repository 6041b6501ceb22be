"""The manager-facing API, compatible with Backend.AI's storage-proxy manager API: 26.09 by
default, 23.09 with ``[api.manager] compat = "23.09"`` (``core.dialect``).

Authenticated by the shared secret in ``X-BackendAI-Storage-Auth-Token``; health routes are open.
Where the reference answers a user error with a 500, this one answers the right 4xx.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from ...core import caller
from ...core.errors import AuthenticationFailed
from ...services.facade import Services
from .. import openapi
from ..front import front_door, on_prepare
from ..keys import DOOR, SERVICES
from ..problem import Handler
from . import (
    acl,
    audit,
    bgtask,
    dataproxy,
    files,
    folders,
    quota,
    snapshots,
    tokens,
    transfers,
    versions,
    volumes,
)
from .health import health, livez, readyz, status

AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
_OPEN_PATHS = frozenset({"/", "/status", "/health", "/livez", "/readyz"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in _OPEN_PATHS and not openapi.is_open(request.path):
        token = request.headers.get(AUTH_HEADER, "")
        expected = request.app[SERVICES].settings.manager_secret
        # A header may carry any bytes (kept as surrogate escapes): compare bytes, never crash.
        given = token.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected.encode()):
            raise AuthenticationFailed(f"{'wrong' if token else 'missing'} {AUTH_HEADER} header")
        caller.identify("manager")
    return await handler(request)


def create_manager_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[front_door(services.metrics), auth_middleware],
        client_max_size=16 << 20,
    )
    app[SERVICES] = services
    app[DOOR] = "manager"
    app.on_response_prepare.append(on_prepare(None))
    r = app.router
    r.add_get("/", status)
    r.add_get("/status", status)
    r.add_get("/health", health)
    r.add_get("/livez", livez)
    r.add_get("/readyz", readyz)
    r.add_get("/volumes", volumes.list_volumes)
    r.add_get("/volume/hwinfo", volumes.hwinfo)
    r.add_get("/volume/performance-metric", volumes.performance_metric)
    r.add_get("/volume/quota", volumes.get_volume_quota)
    r.add_patch("/volume/quota", volumes.set_volume_quota)
    r.add_post("/quota-scope", quota.create)
    r.add_get("/quota-scope", quota.describe)
    r.add_patch("/quota-scope", quota.update)
    r.add_delete("/quota-scope/quota", quota.unset)
    r.add_post("/folder/create", folders.create)
    r.add_post("/folder/delete", folders.delete)
    r.add_post("/folder/clone", folders.clone)
    r.add_get("/folder/mount", folders.mount)
    r.add_get("/folder/usage", folders.usage)
    r.add_get("/folder/used-bytes", folders.used_bytes)
    r.add_get("/folder/fs-usage", folders.fs_usage)
    r.add_get("/folder/metadata", folders.get_metadata)
    r.add_post("/folder/metadata", folders.set_metadata)
    r.add_post("/folder/file/mkdir", files.mkdir)
    r.add_post("/folder/file/list", files.list_files)
    r.add_post("/folder/file/rename", files.rename)
    r.add_post("/folder/file/move", files.move)
    r.add_post("/folder/file/delete", files.delete)
    r.add_post("/folder/file/delete-async", files.delete_async)
    r.add_post("/folder/file/fetch", files.fetch)
    r.add_post("/folder/file/download", transfers.download_session)
    r.add_post("/folder/file/archive-download-token", transfers.archive_token)
    r.add_post("/folder/file/upload", transfers.upload_session)
    r.add_get("/folder/acl", acl.get_acl)
    r.add_put("/folder/acl", acl.put_acl)
    r.add_post("/folder/acl/grant", acl.grant)
    r.add_post("/folder/acl/revoke", acl.revoke)
    r.add_get("/folder/quota", acl.get_quota)
    r.add_patch("/folder/quota", acl.set_quota)
    r.add_get("/folder/audit", audit.recent)
    r.add_get("/events", audit.events)
    dataproxy.add_routes(r)
    bgtask.add_routes(r)
    snapshots.add_routes(r)
    versions.add_routes(r)
    tokens.add_routes(r)
    openapi.add_routes(r, openapi.manager_description)
    return app
