"""Bad configurations stop the CLI early with exit status 2 and a message naming what is wrong;
the Backend.AI reference config loads unchanged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e_support import StartDaemon, clean_env, free_ports, run_cli, write_config
from etcd_fixtures import EtcdServer

pytestmark = pytest.mark.e2e

EXIT_CONFIG = 2


def _unknown_backend_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "nosuch.toml",
        data_dir=tmp_path / "data",
        manager_port=free_ports(1)[0],
        client_port=free_ports(1)[0],
        secret="secret-secret",
        volumes={
            "good": {"backend": "vfs", "path": tmp_path / "good"},
            "odd": {"backend": "nosuch", "path": tmp_path / "odd"},
        },
    )


def test_start_server_with_unknown_backend_fails_fast(tmp_path: Path) -> None:
    config = _unknown_backend_config(tmp_path)
    started = time.monotonic()
    out = run_cli("start-server", "--config", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert time.monotonic() - started < 10
    assert out.returncode != 0
    assert "'nosuch'" in out.stderr
    assert "volume.odd.backend" in out.stderr
    assert "available backends:" in out.stderr
    available = out.stderr.split("available backends:", 1)[1]
    assert "vfs" in available
    assert "Traceback" not in out.stderr
    # Nothing was started: no listener, no volume directories, no data dir.
    assert not (tmp_path / "good").exists()
    assert not (tmp_path / "data").exists()


def test_config_check_with_unknown_backend_exits_2(tmp_path: Path) -> None:
    config = _unknown_backend_config(tmp_path)
    out = run_cli("config", "check", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == EXIT_CONFIG
    assert "'nosuch'" in out.stderr
    assert "vfs" in out.stderr.split("available backends:", 1)[1]
    assert "OK" not in out.stdout


BAD_VALUES = """\
[storage-proxy]
scandir-limit = "lots"
frobnicate-level = 11

[api.manager]
secret = "long-enough-secret"
"""


def test_config_check_names_every_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD_VALUES)
    out = run_cli("config", "check", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == EXIT_CONFIG, out.stdout + out.stderr
    assert str(config) in out.stderr
    lines = out.stderr.splitlines()
    assert any("storage-proxy.scandir-limit" in ln and "lots" in ln for ln in lines), out.stderr
    assert any("storage-proxy.frobnicate-level" in ln for ln in lines), out.stderr
    assert "Traceback" not in out.stderr


def test_start_server_refuses_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD_VALUES)
    out = run_cli("start-server", "--config", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == EXIT_CONFIG
    assert "storage-proxy.scandir-limit" in out.stderr
    assert "storage-proxy.frobnicate-level" in out.stderr


def test_invalid_toml_syntax_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[storage-proxy\nnode-id = "x"\n')
    for args in (("config", "check", config), ("start-server", "--config", config)):
        out = run_cli(*args, env=clean_env(tmp_path), cwd=tmp_path)
        assert out.returncode == EXIT_CONFIG, (args, out.stderr)
        assert "not valid TOML" in out.stderr
        assert "line 1" in out.stderr
        assert "Traceback" not in out.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    out = run_cli("config", "check", missing, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == EXIT_CONFIG
    assert f"config file not found: {missing}" in out.stderr


def test_bad_value_from_the_environment_exits_2(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "ok.toml",
        data_dir=tmp_path / "data",
        manager_port=1,
        client_port=2,
        secret="secret-secret",
        volumes={"v": {"backend": "vfs", "path": tmp_path / "v"}},
    )
    env = clean_env(tmp_path, {"STORAGE_PROXY_API__MANAGER__SERVICE_ADDR__PORT": "not-a-port"})
    out = run_cli("config", "check", config, env=env, cwd=tmp_path)
    assert out.returncode == EXIT_CONFIG
    assert "api.manager.service-addr" in out.stderr


# The Backend.AI 23.09 reference peer's config (shared/bench-peer/storage-proxy.toml), verbatim
# apart from @PEER_DIR@: kebab-case keys, [etcd], [debug], num-proc, aiomonitor-*, logging.console.
REFERENCE_CONFIG = """\
# Backend.AI storage-proxy 23.9.10 reference-peer config (validated against
# ai/backend/storage/config.py local_config_iv)
[etcd]
namespace = "local"
addr = { host = "127.0.0.1", port = 23791 }
user = ""
password = ""

[storage-proxy]
node-id = "baipeer-sp1"
num-proc = 2
pid-file = "@PEER_DIR@/storage-proxy.pid"
event-loop = "asyncio"
ipc-base-path = "@PEER_DIR@/ipc"
scandir-limit = 1000
max-upload-size = "100g"
# secret used to sign JWT download/upload tokens
secret = "baipeer-jwt-secret-0123456789abcdef"
session-expire = "1d"
aiomonitor-termui-port = 48321
aiomonitor-webui-port = 49321
use-watcher = false

[api.client]
service-addr = { host = "127.0.0.1", port = 16021 }
ssl-enabled = false

[api.manager]
service-addr = { host = "127.0.0.1", port = 16022 }
ssl-enabled = false
# X-BackendAI-Storage-Auth-Token value
secret = "baipeer-manager-secret"

[volume.vol1]
backend = "vfs"
path = "@PEER_DIR@/vol1"

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "verbose"

[debug]
enabled = false
asyncio = false
enhanced-aiomonitor-task-info = false
log-events = false
"""


def _reference_config(tmp_path: Path) -> Path:
    path = tmp_path / "storage-proxy.toml"
    path.write_text(REFERENCE_CONFIG.replace("@PEER_DIR@", str(tmp_path)))
    return path


def test_reference_config_passes_config_check(tmp_path: Path) -> None:
    config = _reference_config(tmp_path)
    out = run_cli("config", "check", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{config}: OK — volumes: vol1 (vfs)"


def test_reference_config_runs(
    tmp_path: Path, start_daemon_factory: StartDaemon, etcd_server: EtcdServer
) -> None:
    """The same file starts a daemon (its fixed ports moved to free ones from the environment),
    using the etcd it names (here a real one started for the test)."""
    mport, cport, iport = free_ports(3)
    d = start_daemon_factory(
        config=_reference_config(tmp_path),
        env={
            "STORAGE_PROXY_API__MANAGER__SERVICE_ADDR__PORT": str(mport),
            "STORAGE_PROXY_API__CLIENT__SERVICE_ADDR__PORT": str(cport),
            "STORAGE_PROXY_API__MANAGER__INTERNAL_ADDR": f"127.0.0.1:{iport}",
            "STORAGE_PROXY_ETCD__ADDR__PORT": str(etcd_server.port),
            # Keep the test's data out of the current directory ($XDG_DATA_HOME is private).
            "STORAGE_PROXY_STORAGE_PROXY__DATA_DIR": str(tmp_path / "data"),
        },
        manager_port=mport,
        client_port=cport,
        secret="baipeer-manager-secret",
    )
    r = d.manager("GET", "/volumes")
    assert r.status == 200, r.body
    assert [(v["name"], v["backend"], v["path"]) for v in r.json()["volumes"]] == [
        ("vol1", "vfs", str(tmp_path / "vol1"))
    ]
    assert (tmp_path / "vol1").is_dir()
    # num-proc = 2: two workers; the other one may have answered before worker 0 logged
    d.wait_for_log("storage-proxy baipeer-sp1 (worker 0) ready")
    d.wait_for_log("storage-proxy baipeer-sp1 (worker 1) ready")
    assert d.stop() == 0
