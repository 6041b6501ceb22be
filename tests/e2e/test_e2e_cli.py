"""``storage-proxy volumes list`` and ``backends list`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import clean_env, run_cli, write_config

#: What every POSIX volume declares (snapshots and versions by copies beside the vfolder).
POSIX_CAPS = ["file-versions", "local-path", "quota", "snapshot", "snapshot-quota", "vfolder"]

pytestmark = pytest.mark.e2e


def _two_volume_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "sp.toml",
        data_dir=tmp_path / "data",
        manager_port=1,
        client_port=2,
        secret="secret-secret",
        volumes={
            "alpha": {"backend": "vfs", "path": tmp_path / "a"},
            "beta": {"backend": "vfs", "path": tmp_path / "b", "options": {"quota-usage-ttl": 5}},
        },
    )


def test_volumes_list_json(tmp_path: Path) -> None:
    config = _two_volume_config(tmp_path)
    out = run_cli(
        "volumes", "list", "--config", config, "--json", env=clean_env(tmp_path), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "volumes": [
            {
                "name": "alpha",
                "backend": "vfs",
                "path": str(tmp_path / "a"),
                "capabilities": POSIX_CAPS,
            },
            {
                "name": "beta",
                "backend": "vfs",
                "path": str(tmp_path / "b"),
                "capabilities": POSIX_CAPS,
            },
        ]
    }
    # Listing is read-only: no volume directory, data dir or secret is created.
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "data").exists()


def test_volumes_list_table(tmp_path: Path) -> None:
    config = _two_volume_config(tmp_path)
    out = run_cli("volumes", "list", "-f", config, env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "BACKEND", "PATH", "CAPABILITIES"]
    assert [r.split() for r in rows] == [
        ["alpha", "vfs", str(tmp_path / "a"), ",".join(POSIX_CAPS)],
        ["beta", "vfs", str(tmp_path / "b"), ",".join(POSIX_CAPS)],
    ]


def test_volumes_list_with_embedded_defaults(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    out = run_cli("volumes", "list", "--json", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (vol,) = json.loads(out.stdout)["volumes"]
    expected = Path(env["XDG_DATA_HOME"]) / "storage-proxy" / "volumes" / "local"
    assert (vol["name"], vol["backend"], vol["path"]) == ("local", "vfs", str(expected))


def test_volumes_list_rejects_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[volume.x]\nbackend = 'vfs'\n")  # no path
    out = run_cli(
        "volumes", "list", "--config", config, "--json", env=clean_env(tmp_path), cwd=tmp_path
    )
    assert out.returncode == 2
    assert "volume.x.path" in out.stderr
    assert out.stdout == ""


def test_backends_list_has_the_builtin_vfs(tmp_path: Path) -> None:
    out = run_cli("backends", "list", env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    assert rows["vfs"] == "storage_proxy_vfs:VfsVolume"
