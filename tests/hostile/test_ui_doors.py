"""The doors the web UI added — ``POST /token``, directory pages, download links, statistics —
answer anything at all with a 4xx problem+json or a success, never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from api_fixtures import TOKEN_SECRET, Daemon
from harness import user_token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.hostile
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OWNER = "fuzzer"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@pytest.fixture
async def world(daemon: Daemon) -> tuple[Daemon, str]:
    vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=vfid, owner=OWNER)
    assert status == 204
    return daemon, vfid


def clean(status: int, body: bytes, what: object) -> None:
    assert status < 500, (what, status, body[:400])
    if status >= 400:
        problem = json.loads(body)
        assert problem.get("code") and problem.get("status") == status, (what, body[:400])


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(TOKEN_SECRET, OWNER)}"}


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(["user", "groups", "expires_in"]), json_values))
async def test_token_route_never_500(world: tuple[Daemon, str], fields: dict[str, Any]) -> None:
    daemon, _ = world
    resp = await daemon.manager.post("/token", json=fields)
    clean(resp.status, await resp.read(), fields)


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(["path", "expires_in", "archive"]), json_values))
async def test_links_never_500(world: tuple[Daemon, str], fields: dict[str, Any]) -> None:
    daemon, vfid = world
    resp = await daemon.client.post(
        f"/api/v1/vfolders/vol1/{vfid}/links", json=fields, headers=bearer()
    )
    clean(resp.status, await resp.read(), fields)


@SETTINGS
@given(
    query=st.dictionaries(
        st.sampled_from(["path", "marker", "limit", "volume", "vfid"]), st.text(max_size=40)
    ),
    route=st.sampled_from(["dir", "stats"]),
)
async def test_listing_and_stats_never_500(
    world: tuple[Daemon, str], query: dict[str, str], route: str
) -> None:
    daemon, vfid = world
    url = f"/api/v1/vfolders/vol1/{vfid}/dir" if route == "dir" else "/api/v1/storage/stats"
    resp = await daemon.client.get(url, params=query, headers=bearer())
    clean(resp.status, await resp.read(), (route, query))
