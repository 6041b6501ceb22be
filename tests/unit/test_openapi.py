"""The OpenAPI 3.1 descriptions: valid, served on every listener without credentials, naming
every route the apps have (and no route they lack); the checker that validates the suite's
responses against them catches a response that drifted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from api_fixtures import Daemon
from openapi_conformance import Conformance
from openapi_spec_validator import validate

from storage_proxy.api.client import create_client_app
from storage_proxy.api.internal import create_internal_app
from storage_proxy.api.manager import create_manager_app
from storage_proxy.api.openapi import (
    client_description,
    internal_description,
    manager_description,
)

DESCRIPTIONS = {
    "client": (client_description, create_client_app),
    "manager": (manager_description, create_manager_app),
    "internal": (internal_description, create_internal_app),
}


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_descriptions_are_valid_openapi_3_1(name: str) -> None:
    doc = DESCRIPTIONS[name][0]()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any error


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" and any(
            r.method == "GET" and r.resource is route.resource for r in app.router.routes()
        ):
            continue  # aiohttp adds HEAD to every GET route
        assert route.resource is not None
        found.add((route.method.lower(), route.resource.canonical))
    return found


@pytest.mark.parametrize("name", DESCRIPTIONS)
async def test_every_route_is_described_and_nothing_else(name: str, daemon: Daemon) -> None:
    describe, create = DESCRIPTIONS[name]
    doc = describe()
    described = {(m, p) for p, item in doc["paths"].items() for m in item}
    routes = _routes(create(daemon.ctx.services))
    assert routes - described == set(), "routes missing from the description"
    assert described - routes == set(), "described operations that are no route"


async def test_served_without_credentials(daemon: Daemon) -> None:
    for client, describe in (
        (daemon.client, client_description),
        (daemon.manager, manager_description),
    ):
        resp = await client.get("/openapi.json", headers={"X-BackendAI-Storage-Auth-Token": ""})
        assert resp.status == 200
        assert await resp.json() == json.loads(json.dumps(describe()))
        page = await client.get("/docs", headers={"X-BackendAI-Storage-Auth-Token": ""})
        assert page.status == 200 and page.content_type == "text/html"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert (await client.get("/docs/docs.js")).status == 200
        missing = await client.get("/docs/app.js")  # only the page's own files
        assert missing.status == 404 and (await missing.json())["code"] == "not-found"
    # the rest of the manager API still needs the secret
    resp = await daemon.manager.get("/volumes", headers={"X-BackendAI-Storage-Auth-Token": "x"})
    assert resp.status == 403


async def _drifted(aiohttp_client: Any, body: Any, status: int = 200) -> list[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    check = Conformance(client_description())
    app = web.Application()
    app.router.add_get("/api/v1/storage/health", handler)
    app.router.add_get("/not/described", handler)
    client = await aiohttp_client(check.install(app))
    await client.get("/api/v1/storage/health")
    await client.get("/not/described")
    return check.violations


async def test_the_checker_catches_drift(aiohttp_client: Any) -> None:
    good = {"status": "ok", "down": [], "volumes": []}
    assert await _drifted(aiohttp_client, good) == ["GET /not/described: not described"]
    bad = {"status": "fine", "down": [], "volumes": []}
    violations = await _drifted(aiohttp_client, bad)
    assert any("/api/v1/storage/health -> 200" in v and "fine" in v for v in violations)
    undescribed_status = await _drifted(aiohttp_client, good, status=202)
    assert any("202: status not described" in v for v in undescribed_status)
