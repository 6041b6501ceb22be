"""The shared cache on a real redis-server: two nodes (two root contexts) on one volume, one
SQLite store and one Redis.  Lifetimes are an hour, so only invalidation can explain a fresh read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import MANAGER_SECRET
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_fixtures import RedisServer, node_config

from helpers import new_vfid
from storage_proxy.api.internal import create_internal_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.context import RootContext, build_root_context
from storage_proxy.core.paths import RelPath
from storage_proxy.core.records import AclEntry, Permission
from storage_proxy.core.types import VFolderID
from storage_proxy.infra.cache import CacheKind, SharedCache
from storage_proxy.metadata.cached import CachedMetadataStore
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.access import Actor
from storage_proxy.services.tokens import UserClaims

LONG = {"ttl": "1h", "local-ttl": "1h", "usage-ttl": "1h"}
KIND = CacheKind("test", ttl=3600, local_ttl=3600)


@pytest.fixture
async def nodes(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[RootContext, RootContext]]:
    a = await build_root_context(node_config(tmp_path, redis_server.port, cache=LONG))
    b = await build_root_context(node_config(tmp_path, redis_server.port, cache=LONG))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def cache_of(ctx: RootContext) -> SharedCache:
    assert isinstance(ctx.metadata, CachedMetadataStore)
    return ctx.metadata.cache


def lookups(ctx: RootContext, cache: str, result: str) -> float:
    value = ctx.metrics.registry.get_sample_value(
        "storage_proxy_cache_lookups_total", {"cache": cache, "result": result}
    )
    return value or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.0) -> float:
    """Seconds until ``check`` holds; fails the test after ``within``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"not true within {within}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def wait_active(cache: SharedCache, active: bool = True, within: float = 5.0) -> None:
    async def check() -> bool:
        return cache.active is active

    await eventually(check, within)


async def settle(a: RootContext, b: RootContext) -> None:
    """Until B has heard every invalidation A sent so far (one channel delivers in order)."""
    cb = cache_of(b)

    async def marker() -> str:
        return "m"

    async def cached() -> bool:  # a fill is skipped while other news arrives: retry
        await cb.get(KIND, "marker", marker)
        return f"{KIND.name}:marker" in cb._local

    await eventually(cached)
    await cache_of(a).invalidate(KIND, "marker")

    async def heard() -> bool:
        return f"{KIND.name}:marker" not in cb._local

    await eventually(heard)


async def make_vfolder(ctx: RootContext, owner: str) -> VFolderID:
    vfid = new_vfid()
    await ctx.services.vfolders.create("vol1", vfid, owner=owner)
    return vfid


async def test_without_redis_or_when_disabled_nothing_is_cached(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cfg = node_config(tmp_path, redis_server.port, cache={"enabled": False})
    ctx = await build_root_context(cfg)
    try:
        assert isinstance(ctx.metadata, SqliteMetadataStore)
    finally:
        await ctx.close()
    cfg["redis"] = None
    ctx = await build_root_context(cfg)
    try:
        assert isinstance(ctx.metadata, SqliteMetadataStore)
    finally:
        await ctx.close()


async def test_permission_reads_are_served_from_the_cache(
    nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    await settle(a, b)
    alice = UserClaims(sub="alice", groups=())
    assert await b.access.effective(alice, "vol1", vfid) is Permission.RWD  # misses
    assert lookups(b, "vfolder", "miss") == 1 and lookups(b, "acl", "miss") == 1
    for _ in range(5):
        assert await b.access.effective(alice, "vol1", vfid) is Permission.RWD
    assert lookups(b, "vfolder", "local") == 5 and lookups(b, "acl", "local") == 5
    # A third node would find B's copies in Redis: A has none of its own yet.
    assert await a.access.effective(alice, "vol1", vfid) is Permission.RWD
    assert lookups(a, "vfolder", "redis") == 1 and lookups(a, "acl", "redis") == 1


async def test_acl_and_owner_changes_on_a_reach_b_within_a_second(
    nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    await settle(a, b)
    bob = UserClaims(sub="bob", groups=())
    assert await b.access.effective(bob, "vol1", vfid) is Permission.NONE  # now cached
    assert await b.access.effective(bob, "vol1", vfid) is Permission.NONE
    assert lookups(b, "acl", "local") == 1

    await a.metadata.set_acl_entry("vol1", str(vfid), AclEntry("user", "bob", Permission.RO))

    async def bob_reads() -> bool:
        return await b.access.effective(bob, "vol1", vfid) is Permission.RO

    print("ACL change seen on B after", await eventually(bob_reads), "s")

    await a.metadata.update_vfolder("vol1", str(vfid), owner="bob", kind="user")

    async def bob_owns() -> bool:
        return await b.access.effective(bob, "vol1", vfid) is Permission.RWD

    await eventually(bob_owns)
    assert await a.metadata.remove_acl_entry("vol1", str(vfid), "user", "bob")
    await a.metadata.update_vfolder("vol1", str(vfid), owner="alice", kind="user")

    async def bob_is_out() -> bool:
        return await b.access.effective(bob, "vol1", vfid) is Permission.NONE

    await eventually(bob_is_out)


async def test_quota_limits_are_cached_and_invalidated(
    nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    qsid = str(vfid.quota_scope_id)
    assert await b.metadata.get_quota_limit("vol1", qsid) is None
    await a.metadata.set_quota_limit("vol1", qsid, 1000)

    async def limited() -> bool:
        return await b.metadata.get_quota_limit("vol1", qsid) == 1000

    await eventually(limited)
    await a.metadata.delete_quota_scope("vol1", qsid)

    async def gone() -> bool:
        return await b.metadata.get_quota_limit("vol1", qsid) is None

    await eventually(gone)


async def test_a_slow_reader_never_puts_back_what_a_writer_invalidated(
    nodes: tuple[RootContext, RootContext], redis_server: RedisServer
) -> None:
    a, b = nodes
    ca, cb = cache_of(a), cache_of(b)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_old() -> str:
        started.set()
        await release.wait()
        return "old"  # what the store said before the writer changed it

    reader = asyncio.create_task(cb.get(KIND, "k", slow_old))
    await started.wait()
    heard = cb._heard
    await ca.invalidate(KIND, "k")  # the writer changed the store, then invalidated

    async def b_heard() -> bool:
        return cb._heard > heard

    await eventually(b_heard)
    release.set()
    assert await reader == "old"
    # Neither Redis nor B's process keeps the stale value: the next read loads again.
    raw = await cb._client.get(cb._value_key(f"{KIND.name}:k"))
    assert raw is None

    async def new() -> str:
        return "new"

    assert await cb.get(KIND, "k", new) == "new"
    assert await ca.get(KIND, "k", slow_old) == "new"  # from Redis, B filled it


async def test_redis_down_reads_go_to_the_store_and_caching_resumes(
    nodes: tuple[RootContext, RootContext], redis_server: RedisServer
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    assert (await b.metadata.get_vfolder("vol1", str(vfid))).owner == "alice"  # type: ignore[union-attr]
    redis_server.stop()
    await wait_active(cache_of(b), False)
    await a.metadata.update_vfolder("vol1", str(vfid), owner="carol", kind="user")
    record = await b.metadata.get_vfolder("vol1", str(vfid))
    assert record is not None and record.owner == "carol"  # no stale copy while Redis is away
    assert lookups(b, "vfolder", "bypass") >= 1
    redis_server.start()  # same port; nothing survived in it
    await wait_active(cache_of(a))
    await wait_active(cache_of(b))

    async def served_from_a_copy() -> bool:
        record = await b.metadata.get_vfolder("vol1", str(vfid))
        assert record is not None and record.owner == "carol"  # never the copy from before
        return lookups(b, "vfolder", "local") > 0

    await eventually(served_from_a_copy)  # caching again


async def test_a_lost_invalidation_flushes_every_copy_once_redis_answers(
    nodes: tuple[RootContext, RootContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = nodes
    ca, cb = cache_of(a), cache_of(b)

    async def load_v1() -> str:
        return "v1"

    assert await cb.get(KIND, "k", load_v1) == "v1"  # B and Redis hold v1
    real_eval = ca._client.eval

    async def unreachable(*args: Any) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(ca._client, "eval", unreachable)
    await ca.invalidate(KIND, "k")  # the store says v2 now, but nobody could be told
    assert not ca.active  # A stops caching ...

    async def load_v2() -> str:
        return "v2"

    assert await ca.get(KIND, "k", load_v2) == "v2"  # ... reads the store ...
    monkeypatch.setattr(ca._client, "eval", real_eval)
    await ca.get(KIND, "k", load_v2)  # ... and flushes as soon as Redis answers it

    async def b_sees_v2() -> bool:
        return await cb.get(KIND, "k", load_v2) == "v2"

    await eventually(b_sees_v2)
    assert ca.active


async def test_usage_is_scanned_once_for_every_node_and_dropped_by_writes(
    nodes: tuple[RootContext, RootContext], aiohttp_client: Any
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    root = await a.volumes.get("vol1").get_vfolder_mount(vfid)
    (root / "one.bin").write_bytes(b"x" * 100)
    assert (await a.usage.get("vol1", vfid)).used_bytes == 100
    assert lookups(a, "usage", "miss") == 1
    (root / "behind-our-back.bin").write_bytes(b"y" * 50)  # seen once the figure expires
    assert (await b.usage.get("vol1", vfid)).used_bytes == 100
    assert lookups(b, "usage", "redis") == 1

    # An upload through A drops the figure on every node.
    session = await a.uploads.create(Actor.manager(), "vol1", vfid, RelPath.parse("up.bin"), 7)
    assert (await a.uploads.append(session, 0, _body(b"1234567"))).complete

    async def b_counts_upload() -> bool:
        return (await b.usage.get("vol1", vfid)).used_bytes == 157

    await eventually(b_counts_upload)

    # A delete through A's manager API does too (the write guard marks the vfolder).
    manager = await aiohttp_client(create_manager_app(a.services))
    resp = await manager.post(
        "/folder/file/delete",
        json={"volume": "vol1", "vfid": str(vfid), "relpaths": ["one.bin"]},
        headers={AUTH_HEADER: MANAGER_SECRET},
    )
    assert resp.status == 200, await resp.text()

    async def b_counts_delete() -> bool:
        return (await b.usage.get("vol1", vfid)).used_bytes == 57

    await eventually(b_counts_delete)
    resp = await manager.get(
        "/folder/usage",
        json={"volume": "vol1", "vfid": str(vfid)},
        headers={AUTH_HEADER: MANAGER_SECRET},
    )
    assert (await resp.json())["used_bytes"] == 57


async def test_the_usage_scan_refreshes_every_nodes_figure(
    nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = nodes
    vfid = await make_vfolder(a, "alice")
    root = await a.volumes.get("vol1").get_vfolder_mount(vfid)
    assert (await b.usage.get("vol1", vfid)).used_bytes == 0  # cached on B and in Redis
    (root / "new.bin").write_bytes(b"z" * 321)
    assert (await b.usage.get("vol1", vfid)).used_bytes == 0
    await a.bgtasks.wait(await a.jobs.run_now("usage-scan"))

    async def fresh() -> bool:
        return (await b.usage.get("vol1", vfid)).used_bytes == 321

    await eventually(fresh)


async def test_metrics_report_cache_hit_ratio_and_bgtasks(
    nodes: tuple[RootContext, RootContext], aiohttp_client: Any
) -> None:
    a, _ = nodes
    vfid = await make_vfolder(a, "alice")
    alice = UserClaims(sub="alice", groups=())
    for _ in range(4):  # one miss, three hits
        await a.access.effective(alice, "vol1", vfid)
    await a.bgtasks.wait(await a.jobs.run_now("usage-scan"))
    internal = await aiohttp_client(create_internal_app(a.services))
    text = await (await internal.get("/metrics")).text()
    assert 'storage_proxy_cache_hit_ratio{cache="acl"} 0.75' in text
    assert 'storage_proxy_bgtasks_total{kind="job:usage-scan",status="done"} 1.0' in text
    assert 'storage_proxy_bgtask_duration_sec_count{kind="job:usage-scan"} 1.0' in text
    assert 'storage_proxy_bgtasks_running{kind="job:usage-scan"} 0.0' in text


async def test_bgtask_progress_reaches_watchers_on_another_node_at_once(
    nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = nodes
    go = {1: asyncio.Event(), 2: asyncio.Event()}

    async def work(reporter: Any) -> str:
        await reporter.update(1, 3, "first", force=True)
        await go[1].wait()  # each step waits until B has seen the one before
        await reporter.update(2, 3, "second", force=True)
        await go[2].wait()
        return "ok"

    task_id = await a.bgtasks.spawn("test", work)
    seen: list[float] = []

    async def watch() -> None:
        async for record in b.bgtasks.watch(task_id, poll=60):  # no polling help in time
            seen.append(record.current)
            if record.current in go:
                go[int(record.current)].set()

    await asyncio.wait_for(watch(), 5)  # 60 s polls would time out: the news came by Redis
    assert seen[-3:] == [1, 2, 3]
    assert (await b.bgtasks.get(task_id)).status == "done"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data
