"""``STORAGE_PROXY_*`` environment variables override the config file of a running daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import StartDaemon, free_ports, new_vfid, port_accepts

pytestmark = pytest.mark.e2e


def test_env_overrides_secret_port_and_typed_values(
    tmp_path: Path, start_daemon_factory: StartDaemon
) -> None:
    file_port, env_port = free_ports(2)
    file_secret, env_secret = "secret-from-the-file", "secret-from-the-environment"
    d = start_daemon_factory(
        manager_port=file_port,
        secret=file_secret,
        env={
            "STORAGE_PROXY_API__MANAGER__SECRET": env_secret,
            "STORAGE_PROXY_API__MANAGER__SERVICE_ADDR__PORT": str(env_port),
            # A deep key whose value must be converted from the string the environment holds.
            "STORAGE_PROXY_STORAGE_PROXY__SCANDIR_LIMIT": "2",
        },
        wait_manager_port=env_port,
        wait_secret=env_secret,
    )
    assert d.manager_port == env_port
    assert not port_accepts(file_port), "the port from the file must not be listened on"
    assert f"manager API listening on 127.0.0.1:{env_port}" in d.log_text()

    r = d.manager("GET", "/volumes")
    assert r.status == 200, r.body
    r = d.manager("GET", "/volumes", secret=file_secret)
    assert r.status == 403 and r.json()["code"] == "invalid-auth-token", r.body
    r = d.manager("GET", "/volumes", secret="")
    assert r.status == 403, r.body

    vfid = new_vfid()
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 204
    r = d.manager(
        "POST", "/folder/file/mkdir", {"volume": "vol1", "vfid": vfid, "relpath": ["a", "b", "c"]}
    )
    assert r.status == 200, r.body
    r = d.manager("POST", "/folder/file/list", {"volume": "vol1", "vfid": vfid})
    assert r.status == 200, r.body
    assert len(r.json()["items"]) == 2  # scandir-limit = 2 from the environment


def test_env_config_path(tmp_path: Path, start_daemon_factory: StartDaemon) -> None:
    """``STORAGE_PROXY_CONFIG`` names the file when ``--config`` is not given."""
    first = start_daemon_factory()
    assert first.config_path is not None
    assert first.stop() == 0
    d = start_daemon_factory(
        config=None,
        env={"STORAGE_PROXY_CONFIG": str(first.config_path)},
        manager_port=first.manager_port,
        client_port=first.client_port,
        secret=first.secret,
    )
    r = d.manager("GET", "/volumes")
    assert r.status == 200, r.body
    assert [v["name"] for v in r.json()["volumes"]] == ["vol1"]
