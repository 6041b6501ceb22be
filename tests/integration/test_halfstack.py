"""scripts/halfstack.sh brings up real etcd, Redis and an S3 server on 127.0.0.1; twice is fine."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "halfstack.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_up_twice_status_and_down(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("ETCD", "ETCD_PEER", "REDIS", "S3")}
    env = {**os.environ, "HALFSTACK_DIR": str(tmp_path / "hs")}
    env.update({f"HALFSTACK_{name}_PORT": str(port) for name, port in ports.items()})
    try:
        first = run(env, "up")
        assert first.returncode == 0, first.stderr
        assert all(accepts(ports[n]) for n in ("ETCD", "REDIS", "S3"))
        second = run(env, "up")
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("already running") == 3
        status = run(env, "status")
        assert status.returncode == 0 and status.stdout.count("running (pid") == 3
        etcd = subprocess.run(
            ["etcdctl", f"--endpoints=http://127.0.0.1:{ports['ETCD']}", "put", "k", "v"],
            env={**env, "ETCDCTL_API": "3"},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert etcd.stdout.strip() == "OK"
        redis = subprocess.run(
            ["redis-cli", "-p", str(ports["REDIS"]), "ping"], capture_output=True, text=True
        )
        assert redis.stdout.strip() == "PONG"
    finally:
        down = run(env, "down")
    assert down.returncode == 0
    assert not any(accepts(ports[n]) for n in ("ETCD", "REDIS", "S3"))
    assert run(env, "status").returncode == 3
