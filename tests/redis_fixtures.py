"""A real redis-server on a free 127.0.0.1 port, started and stopped around a test."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import raw_config

from helpers import free_port
from storage_proxy.config import validate
from storage_proxy.context import RootContext, build_root_context


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


def node_config(
    tmp_path: Path, redis_port: int, node_id: str = "node-a", **sections: Any
) -> dict[str, Any]:
    """A node on ``tmp_path`` (volume, SQLite store) with Redis; a test's nodes share them, each
    under its own node id."""
    jobs = ("usage-scan", "orphan-scan", "trash-purge", "retention", "scrub", "snapshot-policies")
    raw = raw_config(tmp_path)
    raw["storage-proxy"]["node-id"] = node_id
    return validate(
        {
            **raw,
            "redis": {"addr": {"host": "127.0.0.1", "port": redis_port}},
            "jobs": {f"{job}-interval": "0" for job in jobs},
            **sections,
        }
    )


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[RootContext, RootContext]]:
    """Two daemons' contexts sharing one volume, one metadata store and one Redis."""
    a = await build_root_context(node_config(tmp_path, redis_server.port, "node-a"))
    b = await build_root_context(node_config(tmp_path, redis_server.port, "node-b"))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
