"""A real etcd for the tests that need one: started once a session on free ports, then stopped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class EtcdServer:
    host: str
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _etcd_binary() -> str | None:
    found = shutil.which("etcd")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "etcd-server"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, capture_output=True)
    return shutil.which("etcd")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except OSError:
        return False


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    binary = _etcd_binary()
    if binary is None:
        pytest.fail("etcd is not installed and cannot be installed (apt-get install etcd-server)")
    data_dir: Path = tmp_path_factory.mktemp("etcd")
    client_port, peer_port = _free_port(), _free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    # Short heartbeat/election: the minimum lease TTL becomes 1 s, so lease tests stay fast.
    log_file = open(data_dir / "etcd.log", "wb")  # noqa: SIM115 - closed after etcd stops
    proc = subprocess.Popen(
        [
            binary,
            "--name=test",
            f"--data-dir={data_dir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--heartbeat-interval=50",
            "--election-timeout=250",
            "--log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        deadline = time.monotonic() + 20
        while not _healthy(client_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (data_dir / "etcd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"etcd did not start (rc={proc.poll()}):\n{log}")
            time.sleep(0.1)
        yield EtcdServer("127.0.0.1", client_port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
