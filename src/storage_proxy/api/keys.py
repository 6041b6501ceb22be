"""Typed application keys: the only way handlers reach shared state — the services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..services.facade import Services

if TYPE_CHECKING:
    from .relay import Relays

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
#: The client API's relay threads (large object-store reads spliced between sockets).
RELAYS: web.AppKey[Relays] = web.AppKey("relays")
#: Which door an application is ("manager", "client", "internal"), for the audit log.
DOOR: web.AppKey[str] = web.AppKey("door", str)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
