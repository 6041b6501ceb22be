"""In-process daemon fixtures: a root context with both APIs behind aiohttp test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_conformance import Conformance

from storage_proxy.api.client import create_client_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.api.openapi import client_description, manager_description
from storage_proxy.config import validate
from storage_proxy.context import RootContext, build_root_context

MANAGER_SECRET = "test-manager-secret"
TOKEN_SECRET = "test-token-secret-0123456789abcdef-long-enough"


def make_config(tmp_path: Path, **sp: Any) -> dict[str, Any]:
    return validate(raw_config(tmp_path, **sp))


def raw_config(tmp_path: Path, **sp: Any) -> dict[str, Any]:
    """A daemon on ``tmp_path``: one vfs volume, SQLite, fixed secrets (not validated yet)."""
    return {
        "storage-proxy": {
            "data-dir": str(tmp_path / "data"),
            "scan-workers": 0,
            "secret": TOKEN_SECRET,
            **sp,
        },
        "api": {"manager": {"secret": MANAGER_SECRET}},
        "volume": {
            "vol1": {
                "backend": "vfs",
                "path": str(tmp_path / "vol1"),
                "options": {"quota-usage-ttl": 0},
            }
        },
    }


@dataclass
class Daemon:
    ctx: RootContext
    manager: TestClient
    client: TestClient

    async def call(self, method: str, path: str, **body: Any) -> tuple[int, Any]:
        resp = await self.manager.request(method, path, json=body)
        data = await resp.json() if resp.content_type.endswith("json") else None
        return resp.status, data


@pytest.fixture
async def daemon(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Daemon]:
    """Both APIs in-process; every response they give is checked against /openapi.json."""
    async for found in _daemon(tmp_path, aiohttp_client, make_config(tmp_path)):
        yield found


@pytest.fixture
async def legacy_daemon(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Daemon]:
    """The same in the 23.09 dialect (``[api.manager] compat = "23.09"``)."""
    raw = raw_config(tmp_path)
    raw["api"]["manager"]["compat"] = "23.09"
    async for found in _daemon(tmp_path, aiohttp_client, validate(raw)):
        yield found


async def _daemon(
    tmp_path: Path, aiohttp_client: Any, config: dict[str, Any]
) -> AsyncIterator[Daemon]:
    ctx = await build_root_context(config)
    checks = [Conformance(manager_description()), Conformance(client_description())]
    manager = await aiohttp_client(checks[0].install(create_manager_app(ctx.services)))
    manager.session.headers[AUTH_HEADER] = MANAGER_SECRET
    client = await aiohttp_client(checks[1].install(create_client_app(ctx.services)))
    yield Daemon(ctx, manager, client)
    await ctx.close()
    violations = [v for check in checks for v in check.violations]
    assert not violations, "responses that /openapi.json does not describe:\n" + "\n".join(
        violations
    )
