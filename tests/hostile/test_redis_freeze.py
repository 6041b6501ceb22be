"""Redis frozen (SIGSTOP) in the middle of uploads: answers come within the deadline, and once
Redis is back the same upload resumes at once — no 409 until a stale lease expires."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request

import pytest
from harness import StartHostile, Tenant
from redis_fixtures import RedisServer

TUS = {"Tus-Resumable": "1.0.0"}
DEADLINE = 1.0  # [redis] timeout (the default)


def _create(t: Tenant, relpath: str, size: int) -> str:
    r = t.manager("POST", "/folder/file/upload", {"relpath": relpath, "size": size})
    assert r.status == 200, r
    return str(r.json()["token"])


def _patch(t: Tenant, token: str, offset: int, data: bytes) -> tuple[int, float]:
    req = urllib.request.Request(
        f"{t.daemon.client_url}/upload?token={token}",
        data=data,
        method="PATCH",
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.monotonic() - started


@pytest.mark.hostile
def test_frozen_redis_answers_within_the_deadline_and_recovers_at_once(
    start_hostile: StartHostile, redis_server: RedisServer
) -> None:
    tenant = start_hostile(
        extra_config=f'\n[redis]\naddr = {{ host = "127.0.0.1", port = {redis_server.port} }}\n'
    )
    tokens = [_create(tenant, f"f{i}.bin", 8) for i in range(6)]
    assert _patch(tenant, tokens[0], 0, b"0123")[0] == 204
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        frozen = [_patch(tenant, token, 0 if i else 4, b"abcd") for i, token in enumerate(tokens)]
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    for status, took in frozen:
        assert status == 503, frozen
        assert took < DEADLINE + 0.5, frozen  # within the deadline
    time.sleep(0.2)
    # Redis answers again: every upload resumes where it stopped, none is refused as "held".
    status, took = _patch(tenant, tokens[0], 4, b"4567")
    assert status == 204, status
    for token in tokens[1:]:
        assert _patch(tenant, token, 0, b"abcdefgh")[0] == 204
    for i in range(6):
        assert (tenant.mount / f"f{i}.bin").stat().st_size == 8
    health = tenant.daemon.manager("GET", "/health")
    assert health.status == 200, health
