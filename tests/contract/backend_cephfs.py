"""cephfs: a real single-node CephFS (ceph-fuse), started once per test session.

The cluster lives here (not in a conftest) so the contract suite and ``tests/backends`` share one
instance under one module name; ``tests/backends/conftest.py`` exposes it as a session fixture
and tears it down at the end of the session (an ``atexit`` hook covers runs of the contract suite
alone).  Fixed ports allow one cluster per machine, so a leftover one is dealt with explicitly.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_cephfs import CephFSVolume

REPO = Path(__file__).resolve().parents[2]
INFRA = Path(os.environ.get("SP_CEPH_INFRA", REPO.parent / "shared" / "infra"))
_OWNER_FILE = "storage-proxy-tests.owner"  # marks a cluster this fixture started (holds its pid)
LEFTOVER_WAIT = 30.0  # seconds a running cluster may take to go away before we give up
_TOOLS = ("ceph-mon", "ceph-osd", "ceph-mds", "ceph-fuse", "ceph", "setfattr", "uuidgen", "bc")


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_mons() -> list[int]:
    """Monitors of clusters on CephFS's fixed ports; an RGW cluster (its own ports) is no rival."""
    proc = subprocess.run(["pgrep", "-x", "ceph-mon"], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split() if _on_fixed_ports(int(p))]


def _on_fixed_ports(pid: int) -> bool:
    """Whether the mon listens where cephfs-up.sh's does (3300/6789), read from its CEPH_CONF;
    a mon whose config cannot be read is taken to, so it is never ignored by mistake."""
    ceph_dir = _ceph_dir_of(pid)
    if ceph_dir is None:
        return True
    try:
        conf = (ceph_dir / "ceph.conf").read_text()
    except OSError:
        return True
    hosts = re.search(r"^\s*mon[ _]host\s*=\s*(.*)$", conf, re.MULTILINE)
    return hosts is None or bool(re.search(r":(3300|6789)\b", hosts.group(1)))


def _ceph_dir_of(pid: int) -> Path | None:
    """The CEPH_DIR a running daemon was started with (from its CEPH_CONF)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"CEPH_CONF="):
            return Path(item[len(b"CEPH_CONF=") :].decode()).parent
    return None


class CephCluster:
    """Starts the throw-away cluster on first use; ``stop`` is idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ceph_dir: Path | None = None
        self._error: str | None = None

    @property
    def mount(self) -> Path:
        with self._lock:
            if self._error is not None:
                pytest.fail(self._error, pytrace=False)
            if self.ceph_dir is None:
                try:
                    self._start()
                except Exception as e:  # remembered: later tests fail fast with the same cause
                    self._error = f"cannot start the test CephFS: {e}"
                    pytest.fail(self._error, pytrace=False)
            assert self.ceph_dir is not None
            return self.ceph_dir / "mnt"

    def _start(self) -> None:
        if any(shutil.which(tool) is None for tool in _TOOLS):
            _run(["bash", str(REPO / "scripts" / "ci-apt.sh")], timeout=900)
        self._clear_leftover()
        ceph_dir = Path(tempfile.mkdtemp(prefix="sp-ceph-"))
        (ceph_dir / _OWNER_FILE).write_text(str(os.getpid()))
        env = {**os.environ, "CEPH_DIR": str(ceph_dir)}
        try:
            _run(["bash", str(INFRA / "cephfs-up.sh")], env=env)
        except BaseException:
            subprocess.run(["bash", str(INFRA / "cephfs-down.sh")], env=env, capture_output=True)
            shutil.rmtree(ceph_dir, ignore_errors=True)
            raise
        self.ceph_dir = ceph_dir
        atexit.register(self.stop)

    def _clear_leftover(self) -> None:
        """Stop a cluster a crashed test session left; refuse to touch anyone else's.

        A cluster still shutting down, or one another test session is about to stop, gets
        ``LEFTOVER_WAIT`` seconds to go away first.
        """
        deadline = time.monotonic() + LEFTOVER_WAIT
        while pids := _running_mons():
            pid = pids[0]
            ceph_dir = _ceph_dir_of(pid)
            owner = ceph_dir / _OWNER_FILE if ceph_dir else None
            owner_pid = int(owner.read_text() or 0) if owner and owner.exists() else None
            if owner_pid is not None and (owner_pid == os.getpid() or not _pid_alive(owner_pid)):
                env = {**os.environ, "CEPH_DIR": str(ceph_dir)}
                _run(["bash", str(INFRA / "cephfs-down.sh")], env=env)
                shutil.rmtree(str(ceph_dir), ignore_errors=True)
                continue
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            if owner_pid is not None:
                raise RuntimeError(
                    f"another test session (pid {owner_pid}) is using the Ceph cluster at "
                    f"{ceph_dir}; fixed ports allow one cluster per machine: let it finish, rerun."
                )
            raise RuntimeError(
                f"a Ceph cluster these tests did not start is running (ceph-mon pid {pid}, "
                f"CEPH_DIR {ceph_dir or 'not readable'}); its fixed ports (3300, 6789, 6800-6809) "
                "allow one per machine: stop it (CEPH_DIR=<its dir> cephfs-down.sh) and rerun."
            )

    def stop(self) -> None:
        with self._lock:
            ceph_dir, self.ceph_dir = self.ceph_dir, None
        if ceph_dir is None:
            return
        env = {**os.environ, "CEPH_DIR": str(ceph_dir)}
        subprocess.run(["bash", str(INFRA / "cephfs-down.sh")], env=env, capture_output=True)
        shutil.rmtree(ceph_dir, ignore_errors=True)


#: The one cluster of this test session.
CLUSTER = CephCluster()


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    mount = await asyncio.to_thread(lambda: CLUSTER.mount)  # may start it: not on the loop
    root = mount / "contract" / tmp_path.name
    volume = CephFSVolume("cephfs", root, deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()


SPEC = BackendSpec(name="cephfs", make_volume=make, usage_settle_seconds=5.0)
