"""Redis (a real redis-server): one writer per upload across nodes, 503 while Redis is down,
recovery without a restart, and /health naming Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis_fixtures import RedisServer, node_config

from helpers import new_vfid
from storage_proxy.api.internal import create_internal_app
from storage_proxy.context import RootContext, build_root_context
from storage_proxy.core.errors import Conflict
from storage_proxy.core.paths import RelPath
from storage_proxy.infra.redis import RedisUnavailable
from storage_proxy.services.access import Actor


async def test_two_nodes_never_append_to_one_upload_at_once(
    two_nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = two_nodes
    vfid = new_vfid()
    volume = a.volumes.get("vol1")
    await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await volume.create_vfolder(vfid)
    session = await a.uploads.create(Actor.manager(), "vol1", vfid, RelPath.parse("x.bin"), 10)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"12345"
        started.set()
        await release.wait()

    writing = asyncio.create_task(a.uploads.append(session, 0, slow()))
    await started.wait()
    on_b = await b.uploads.get(session.id)
    with pytest.raises(Conflict, match="held by another writer"):  # the Redis lease refuses B
        await b.uploads.append(on_b, 0, _body(b"12345"))
    release.set()
    assert (await writing).offset == 5
    on_b = await b.uploads.get(session.id)
    result = await b.uploads.append(on_b, 5, _body(b"67890"))  # and resumes on B afterwards
    assert result.complete


async def test_redis_down_is_503_and_recovers(
    tmp_path: Path, redis_server: RedisServer, aiohttp_client: Any
) -> None:
    ctx = await build_root_context(node_config(tmp_path, redis_server.port))
    try:
        internal = await aiohttp_client(create_internal_app(ctx.services))
        vfid = new_vfid()
        volume = ctx.volumes.get("vol1")
        await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
        await volume.create_vfolder(vfid)
        session = await ctx.uploads.create(Actor.manager(), "vol1", vfid, RelPath.parse("y.bin"), 6)
        redis_server.stop()
        with pytest.raises(RedisUnavailable) as err:
            await ctx.uploads.append(session, 0, _body(b"abc"))
        assert err.value.status == 503
        # readiness gates on Redis (503); /health informs (200, degraded), as in 26.9.6
        resp = await internal.get("/readyz")
        assert resp.status == 503 and (await resp.json())["down"] == ["redis:leases"]
        resp = await internal.get("/health")
        assert resp.status == 200 and (await resp.json())["status"] == "degraded"
        assert (await internal.get("/livez")).status == 200
        redis_server.start()  # same port: the client reconnects by itself
        assert (await ctx.uploads.append(session, 0, _body(b"abc"))).offset == 3
        resp = await internal.get("/readyz")
        assert resp.status == 200
    finally:
        await ctx.close()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data
