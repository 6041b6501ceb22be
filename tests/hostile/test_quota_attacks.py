"""Quotas under attack: names that look like the proxy's own staging files, several worker
processes and writers at once, sequential writes faster than the usage cache, a daemon killed
mid-write.  A limit is never passed by more than one chunk, and a crash leaves nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from harness import StartHostile, Tenant, make_tenant

MiB = 1 << 20
LIMIT = 10 * MiB
#: How far past a limit concurrent writers may get: one chunk (nothing, in fact: reservations
#: are taken before bytes are written).
CHUNK = 1 * MiB


def _limit(t: Tenant, limit: int = LIMIT) -> None:
    scope = t.vfid.rsplit("/", 1)[0]
    body = {"volume": t.volume, "qsid": scope, "options": {"limit_bytes": limit}}
    r = t.daemon.manager("PATCH", "/quota-scope", body)
    assert r.status == 204, r


def _stored(t: Tenant) -> int:
    return sum(p.stat().st_size for p in t.mount.rglob("*") if p.is_file())


async def _put(s: aiohttp.ClientSession, t: Tenant, name: str, size: int, pieces: int = 8) -> int:
    async def body():  # type: ignore[no-untyped-def]
        for _ in range(pieces):
            yield os.urandom(size // pieces)
            await asyncio.sleep(0.01)

    async with s.put(f"{t.files_url}/files/{name}", data=body(), headers=t.auth) as resp:
        await resp.read()
        return resp.status


@pytest.mark.hostile
async def test_names_like_staging_files_count_against_the_quota(plain_tenant: Tenant) -> None:
    t = plain_tenant
    _limit(t)
    async with aiohttp.ClientSession() as s:
        statuses = [await _put(s, t, f"x.sp-tmp-{i}", 8 * MiB) for i in range(6)]
    assert statuses.count(201) == 1 and statuses.count(413) == 5, statuses
    usage = t.manager("GET", "/folder/usage").json()
    assert usage["used_bytes"] == 8 * MiB, usage
    assert _stored(t) <= LIMIT


@pytest.mark.hostile
@pytest.mark.parametrize("workers", [1, 2])
async def test_concurrent_writers_never_pass_the_limit(
    start_hostile: StartHostile, workers: int
) -> None:
    """8 writers at once, then sequential writes, with one and with two worker processes."""
    t = start_hostile(storage_proxy={"num-proc": workers})
    _limit(t)
    connector = aiohttp.TCPConnector(limit=16, force_close=True)  # spread over the workers
    async with aiohttp.ClientSession(connector=connector) as s:
        statuses = await asyncio.gather(*(_put(s, t, f"c{i}.bin", 2 * MiB) for i in range(8)))
        assert statuses.count(201) >= 1, statuses
        assert set(statuses) <= {201, 413}, statuses
        assert _stored(t) <= LIMIT + CHUNK, (_stored(t), statuses)
        for i in range(8):  # sequential, faster than any usage cache, on either worker
            await _put(s, t, f"seq{i}.bin", 2 * MiB)
        assert _stored(t) <= LIMIT + CHUNK, _stored(t)


@pytest.mark.hostile
def test_a_killed_daemon_leaves_no_staging_and_no_reservation(
    start_hostile: StartHostile, tmp_path: Path
) -> None:
    """kill -9 in the middle of streamed writes; after a restart nothing staged is left, no
    quota is held for them, and the same writes fit again."""
    t = start_hostile(storage_proxy={"num-proc": 2})
    _limit(t)

    async def writes() -> None:
        async with aiohttp.ClientSession() as s:
            tasks = [
                asyncio.ensure_future(_put(s, t, f"k{i}.bin", 4 * MiB, pieces=200))
                for i in range(2)
            ]
            await asyncio.sleep(0.8)  # both streaming
            os.killpg(t.daemon.proc.pid, signal.SIGKILL)
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(writes())
    t.daemon.proc.wait(10)
    staging = t.mount.parents[3] / ".uploads"
    assert any(n.startswith(".sp-tmp-") for n in os.listdir(staging)), "nothing was in flight"
    again = _restart(t)
    try:
        assert not [n for n in os.listdir(staging) if n.startswith(".sp-")], os.listdir(staging)

        async def fits() -> list[int]:
            async with aiohttp.ClientSession() as s:
                return [await _put(s, again, f"after{i}.bin", 4 * MiB) for i in range(2)]

        assert asyncio.run(fits()) == [201, 201]  # the killed writes hold nothing any more
    finally:
        again.daemon.stop()


def _restart(t: Tenant) -> Tenant:
    from e2e_support import clean_env, start_daemon

    assert t.daemon.config_path is not None
    daemon = start_daemon(
        tmp=t.daemon.config_path.parent,
        config_path=t.daemon.config_path,
        manager_port=t.daemon.manager_port,
        client_port=t.daemon.client_port,
        secret=t.daemon.secret,
        env=clean_env(t.daemon.config_path.parent),
        log_name=f"restarted-{time.monotonic_ns()}.log",
    )
    restarted = Tenant(daemon, t.volume, t.vfid, t.mount, t.token)
    return restarted


__all__ = ["make_tenant"]
