"""OpenAPI 3.1 descriptions of every listener, served at ``/openapi.json``, with a reference page
at ``/docs`` (a self-contained page from the package's static files: it renders the document
the listener serves; no CDN, nothing from elsewhere).  Both need no credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...core.errors import NotFound
from ..static import load_static, serve
from .bai import HEALTH, health_paths
from .client import client_description
from .common import STATUS, document, media, op, self_description
from .manager import manager_description

OPEN_PATHS = frozenset({"/openapi.json", "/docs"})
OPEN_PREFIX = "/docs/"
DOCS_PAGE = "docs.html"
DOCS_ASSETS = frozenset({"docs.js", "docs.css"})


def internal_description() -> dict[str, Any]:
    paths: dict[str, Any] = {
        **health_paths("health", {"type": "object"}),
        "/metrics": {"get": op("Prometheus metrics", "metrics", {200: media("", "text/plain")})},
        **self_description("reference"),
    }
    return document(
        "storage-proxy internal API",
        "Health, liveness, readiness and Prometheus metrics, for operators and monitoring (no "
        "credentials).",
        paths,
        schemas={"Status": STATUS, "Health": HEALTH},
    )


def is_open(path: str) -> bool:
    """Routes of this module every listener serves without credentials."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIX)


def add_routes(router: web.UrlDispatcher, describe: Callable[[], dict[str, Any]]) -> None:
    body = json.dumps(describe(), separators=(",", ":")).encode()
    files = load_static()

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        name = request.match_info.get("name", DOCS_PAGE)
        if name != DOCS_PAGE and name not in DOCS_ASSETS:
            raise NotFound(f"no file {name!r} in the reference page")
        return serve(request, files[name])

    router.add_get("/openapi.json", openapi_json)
    router.add_get("/docs", docs)
    router.add_get("/docs/{name}", docs)


__all__ = [
    "OPEN_PATHS",
    "add_routes",
    "client_description",
    "internal_description",
    "is_open",
    "manager_description",
]
