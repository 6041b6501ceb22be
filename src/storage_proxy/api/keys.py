"""Typed application keys: the only way handlers reach shared state — the services."""

from __future__ import annotations

from aiohttp import web

from ..services.facade import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
#: Which door an application is ("manager", "client", "internal"), for the audit log.
DOOR: web.AppKey[str] = web.AppKey("door", str)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
