"""The reference peer: Backend.AI's storage-proxy 23.9.10, driven by the shared bench-peer scripts.

The scripts (``setup_peer.sh``, ``run_peer.sh``, ``stop_peer.sh``) live outside this repository,
in ``<repo>/../shared/bench-peer`` by default; they install and run the peer (with its etcd and
redis) under ``PEER_DIR``. This module only calls them as subprocesses.

    peer = Peer(default_shared_dir() / "bench-peer", default_peer_dir())
    peer.setup()                    # idempotent: venvs + rendered config in PEER_DIR
    with peer.running() as pids:    # run_peer.sh ... stop_peer.sh
        ...                         # manager API on PEER_MANAGER, client API on PEER_CLIENT
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PEER_CLIENT = "http://127.0.0.1:16021"
PEER_MANAGER = "http://127.0.0.1:16022"
PEER_SECRET = "baipeer-manager-secret"
PEER_VOLUME = "vol1"
PEER_VERSION = "backend.ai-storage-proxy 23.9.10"

SCRIPTS = ("setup_peer.sh", "run_peer.sh", "stop_peer.sh")
SETUP_TIMEOUT = 900.0  # a first setup installs two venvs (and maybe etcd/redis through apt)
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


class PeerError(Exception):
    """The reference peer could not be installed, started or stopped."""


def default_shared_dir() -> Path:
    """``<repo>/../shared``: where the bench-peer scripts are kept next to the repository."""
    return Path(__file__).resolve().parents[1].parent / "shared"


def default_peer_dir() -> Path:
    """``bench/.peer``: a persistent PEER_DIR, so venvs and test files survive between runs."""
    return Path(__file__).resolve().parent / ".peer"


class Peer:
    """Install, start and stop the reference peer with the bench-peer scripts."""

    def __init__(self, scripts_dir: Path, peer_dir: Path, *, num_proc: int | None = None) -> None:
        self.scripts_dir = scripts_dir
        self.peer_dir = peer_dir
        self.num_proc = num_proc

    def _run(self, script: str, timeout: float) -> str:
        """Run one script with ``PEER_DIR`` exported; its stdout, or PeerError with its output."""
        env = {**os.environ, "PEER_DIR": str(self.peer_dir)}
        if self.num_proc is not None:
            env["NUM_PROC"] = str(self.num_proc)
        try:
            done = subprocess.run(
                ["bash", str(self.scripts_dir / script)],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise PeerError(f"{script} did not finish within {timeout:.0f}s") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            raise PeerError(f"{script} failed (exit {done.returncode}):\n{output}")
        return done.stdout

    def setup(self) -> None:
        """Check the scripts are there, then run ``setup_peer.sh`` (skips what is installed)."""
        missing = [s for s in SCRIPTS if not (self.scripts_dir / s).is_file()]
        if missing:
            raise PeerError(f"{self.scripts_dir} lacks {', '.join(missing)} (see --shared)")
        self.peer_dir.mkdir(parents=True, exist_ok=True)
        self._run("setup_peer.sh", SETUP_TIMEOUT)

    def start(self) -> list[int]:
        """``run_peer.sh`` (restarts from scratch); the storage-proxy master and worker PIDs."""
        out = self._run("run_peer.sh", START_TIMEOUT)
        fields = dict(line.split("=", 1) for line in out.splitlines() if "_pid" in line)
        try:
            master = int(fields["storage_proxy_master_pid"])
        except (KeyError, ValueError):
            raise PeerError(f"run_peer.sh printed no storage-proxy PID:\n{out}") from None
        workers = [int(p) for p in fields.get("storage_proxy_worker_pids", "").split()]
        return [master, *workers]

    def stop(self) -> None:
        """``stop_peer.sh``: TERM by pidfile, then KILL of the peer's own process groups."""
        self._run("stop_peer.sh", STOP_TIMEOUT)

    @contextmanager
    def running(self) -> Iterator[list[int]]:
        """The peer runs inside the block (its PIDs are yielded); it is always stopped after."""
        try:
            yield self.start()
        finally:
            self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the peer's storage-proxy log, for error reports."""
        try:
            text = (self.peer_dir / "logs" / "storage-proxy.log").read_text(errors="replace")
        except OSError:
            return "(no peer log)"
        return "\n".join(text.splitlines()[-lines:])
