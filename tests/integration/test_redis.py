"""Redis (a real redis-server): one writer per upload across nodes, 503 while Redis is down,
recovery without a restart, and /health naming Redis."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import MANAGER_SECRET, TOKEN_SECRET

from helpers import free_port, new_vfid
from storage_proxy.api.internal import create_internal_app
from storage_proxy.config import validate
from storage_proxy.context import RootContext, build_root_context
from storage_proxy.errors import Conflict
from storage_proxy.infra.redis import RedisUnavailable
from storage_proxy.paths import RelPath


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/ci-apt.sh installs it)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def config(tmp_path: Path, redis_port: int) -> dict[str, Any]:
    return validate(
        {
            "storage-proxy": {
                "data-dir": str(tmp_path / "data"),
                "scan-workers": 0,
                "secret": TOKEN_SECRET,
            },
            "api": {"manager": {"secret": MANAGER_SECRET}},
            "volume": {"vol1": {"backend": "vfs", "path": str(tmp_path / "vol1")}},
            "redis": {"addr": {"host": "127.0.0.1", "port": redis_port}},
            "jobs": {
                key: "0"
                for key in (
                    "usage-scan-interval",
                    "orphan-scan-interval",
                    "trash-purge-interval",
                    "retention-interval",
                    "scrub-interval",
                )
            },
        }
    )


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[RootContext, RootContext]]:
    """Two daemons' contexts sharing one volume, one metadata store and one Redis."""
    a = await build_root_context(config(tmp_path, redis_server.port))
    b = await build_root_context(config(tmp_path, redis_server.port))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_two_nodes_never_append_to_one_upload_at_once(
    two_nodes: tuple[RootContext, RootContext],
) -> None:
    a, b = two_nodes
    vfid = new_vfid()
    volume = a.volumes.get("vol1")
    await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await volume.create_vfolder(vfid)
    session = await a.uploads.create("vol1", vfid, RelPath.parse("x.bin"), 10)
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
    ctx = await build_root_context(config(tmp_path, redis_server.port))
    try:
        internal = await aiohttp_client(create_internal_app(ctx))
        vfid = new_vfid()
        volume = ctx.volumes.get("vol1")
        await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
        await volume.create_vfolder(vfid)
        session = await ctx.uploads.create("vol1", vfid, RelPath.parse("y.bin"), 6)
        redis_server.stop()
        with pytest.raises(RedisUnavailable) as err:
            await ctx.uploads.append(session, 0, _body(b"abc"))
        assert err.value.status == 503
        resp = await internal.get("/health")
        assert resp.status == 503 and (await resp.json())["down"] == ["redis"]
        redis_server.start()  # same port: the client reconnects by itself
        assert (await ctx.uploads.append(session, 0, _body(b"abc"))).offset == 3
        resp = await internal.get("/health")
        assert resp.status == 200
    finally:
        await ctx.close()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data
