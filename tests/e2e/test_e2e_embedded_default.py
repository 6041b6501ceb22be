"""``storage-proxy start-server`` with no config at all: the embedded default.

It binds the default ports 127.0.0.1:6021 (client) and 6022 (manager), keeps everything under
``$XDG_DATA_HOME/storage-proxy`` (a temporary directory here; ``HOME`` is one too), generates the
manager secret into an owner-only file and serves one vfs volume named ``local``.
"""

from __future__ import annotations

import socket
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from e2e_support import Daemon, StartDaemon, http

pytestmark = pytest.mark.e2e

CLIENT_PORT, MANAGER_PORT = 6021, 6022


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def default_ports() -> None:
    """Fail (not skip) with a clear message when something else holds 6021/6022."""
    deadline = time.monotonic() + 5.0  # another test's daemon may be on its way out
    while not (_port_free(CLIENT_PORT) and _port_free(MANAGER_PORT)):
        if time.monotonic() > deadline:
            busy = [p for p in (CLIENT_PORT, MANAGER_PORT) if not _port_free(p)]
            pytest.fail(
                f"127.0.0.1 port(s) {busy} are in use by another process; this test runs the "
                f"daemon with its embedded defaults, which listen on {CLIENT_PORT} and "
                f"{MANAGER_PORT}. Stop whatever listens there and rerun."
            )
        time.sleep(0.1)


def _start_default(start: StartDaemon) -> Daemon:
    return start(config=None, manager_port=MANAGER_PORT, client_port=CLIENT_PORT)


def test_embedded_default(
    default_ports: None, tmp_path: Path, start_daemon_factory: StartDaemon
) -> None:
    d = _start_default(start_daemon_factory)
    data_dir = Path(d.env["XDG_DATA_HOME"]) / "storage-proxy"
    assert data_dir.is_relative_to(tmp_path)
    assert d.env["HOME"].startswith(str(tmp_path))

    # Both listeners answer on the default ports.
    r = http("GET", f"http://127.0.0.1:{MANAGER_PORT}/status")
    assert r.status == 200 and r.json()["type"] == "manager-facing"
    r = http("GET", f"http://127.0.0.1:{CLIENT_PORT}/")
    assert r.status == 200 and r.json()["type"] == "client-facing"

    # The generated manager secret: an owner-only file that the manager API accepts.
    secret_file = data_dir / "manager-secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    token_file = data_dir / "token-secret"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token_secret = token_file.read_text().strip()
    assert token_secret != secret

    assert d.manager("GET", "/volumes").status == 403  # no secret sent
    r = d.manager("GET", "/volumes", secret=secret)
    assert r.status == 200, r.body
    assert r.json()["volumes"] == [
        {
            "name": "local",
            "backend": "vfs",
            "path": str(data_dir / "volumes" / "local"),
            "fsprefix": ".",
            "capabilities": [
                "file-versions",
                "local-path",
                "quota",
                "snapshot",
                "snapshot-quota",
                "vfolder",
            ],
        }
    ]
    assert (data_dir / "volumes" / "local").is_dir()

    # The SQLite metadata store lives in the data dir and is a real database.
    metadata = data_dir / "metadata.sqlite3"
    assert metadata.is_file()
    with sqlite3.connect(metadata) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"quota_scopes", "vfolders"} <= tables

    # The log says where to read the secret, and never prints it.
    log = d.log_text()
    assert f"cat {secret_file}" in log
    assert "manager API secret (X-BackendAI-Storage-Auth-Token) generated" in log
    assert secret not in log
    assert token_secret not in log
    assert d.stop() == 0
    assert secret not in d.log_text()

    # A second start reuses the stored secret (and says it loaded it).
    d2 = _start_default(start_daemon_factory)
    assert secret_file.read_text().strip() == secret
    assert d2.manager("GET", "/volumes", secret=secret).status == 200
    log2 = d2.log_text()
    assert "manager API secret (X-BackendAI-Storage-Auth-Token) loaded" in log2
    assert secret not in log2
    assert d2.stop() == 0
