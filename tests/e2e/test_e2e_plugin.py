"""A third-party volume backend, shipped as its own wheel, works with no change to the core.

The plugin is built into a wheel inside the test, installed with ``pip install --target`` into a
private directory (never into the test environment), and found by the daemon only through
``PYTHONPATH`` and its ``storage_proxy.volume_backends`` entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import (
    StartDaemon,
    build_wheel,
    clean_env,
    new_vfid,
    pythonpath_with,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.e2e

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sp-memo-backend"
version = "0.1.0"
description = "A test-only storage-proxy volume backend"

[project.entry-points."storage_proxy.volume_backends"]
memo = "sp_memo_backend:MemoVolume"

[tool.setuptools]
py-modules = ["sp_memo_backend"]
"""

PLUGIN_MODULE = '''\
"""The 'memo' backend: a POSIX volume that also announces xattr and needs a greeting."""

import trafaret as t

from storage_proxy.core.types import Capability
from storage_proxy.volumes.posix import BasePosixVolume


class MemoVolume(BasePosixVolume):
    backend_name = "memo"
    capabilities = BasePosixVolume.capabilities | {Capability.XATTR}
    options_schema = t.Dict(
        {
            t.Key("memo-greeting"): t.String(),
            t.Key("quota-usage-ttl", default=30.0): t.ToFloat(gte=0),
        }
    )

    async def init(self):
        await super().init()
        # Proof that this class, not the built-in vfs one, serves the volume.
        (self.mount_path / "memo-was-here").write_text(self.options["memo-greeting"])
'''

GREETING = "hello from a plugin"


@pytest.fixture(scope="module")
def plugin_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The memo backend built into a wheel and pip-installed into a private --target dir."""
    base = tmp_path_factory.mktemp("memo-plugin")
    src = base / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "sp_memo_backend.py").write_text(PLUGIN_MODULE)
    wheel = build_wheel(src, base / "dist")
    target = base / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "sp_memo_backend.py").is_file()
    dist_infos = list(target.glob("sp_memo_backend-0.1.0.dist-info"))
    assert dist_infos, sorted(p.name for p in target.iterdir())
    assert "memo = sp_memo_backend:MemoVolume" in (dist_infos[0] / "entry_points.txt").read_text()
    return target


def _memo_volume(path: Path) -> dict[str, object]:
    return {"backend": "memo", "path": path, "options": {"memo-greeting": GREETING}}


def test_plugin_is_not_installed_globally(plugin_target: Path, tmp_path: Path) -> None:
    """Control: without the PYTHONPATH the daemon does not know 'memo' (nothing leaked)."""
    out = run_cli("backends", "list", env=clean_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "vfs" in out.stdout
    assert "memo" not in out.stdout


def test_backends_list_shows_the_plugin(plugin_target: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, {"PYTHONPATH": pythonpath_with(plugin_target)})
    out = run_cli("backends", "list", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if line.strip()}
    assert rows["memo"] == "sp_memo_backend:MemoVolume"
    assert rows["vfs"] == "storage_proxy_vfs:VfsVolume"


def test_cli_validates_and_lists_a_plugin_volume(plugin_target: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, {"PYTHONPATH": pythonpath_with(plugin_target)})
    good = write_config(
        tmp_path / "memo.toml",
        data_dir=tmp_path / "data",
        manager_port=1,
        client_port=2,
        secret="memo-secret-123",
        volumes={"notes": _memo_volume(tmp_path / "notes")},
    )
    check = run_cli("config", "check", good, env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "notes (memo)" in check.stdout

    listed = run_cli("volumes", "list", "--config", good, "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (vol,) = json.loads(listed.stdout)["volumes"]
    assert vol["name"] == "notes" and vol["backend"] == "memo"
    assert vol["capabilities"] == [
        "file-versions", "local-path", "quota", "snapshot", "snapshot-quota", "vfolder", "xattr"
    ]  # fmt: skip

    # The plugin's own option schema is enforced by the core: a missing required option is a
    # config error (exit 2) that names the volume.
    bad = write_config(
        tmp_path / "memo-bad.toml",
        data_dir=tmp_path / "data",
        manager_port=1,
        client_port=2,
        secret="memo-secret-123",
        volumes={"notes": {"backend": "memo", "path": tmp_path / "notes"}},
    )
    check = run_cli("config", "check", bad, env=env, cwd=tmp_path)
    assert check.returncode == 2, check.stdout + check.stderr
    assert "volume.notes.options" in check.stderr
    assert "memo-greeting" in check.stderr


def test_daemon_serves_a_plugin_volume(
    plugin_target: Path, tmp_path: Path, start_daemon_factory: StartDaemon
) -> None:
    vol_path = tmp_path / "notes"
    d = start_daemon_factory(
        volumes={
            "notes": _memo_volume(vol_path),
            "plain": {"backend": "vfs", "path": tmp_path / "p"},
        },
        env={"PYTHONPATH": pythonpath_with(plugin_target)},
    )
    # The plugin's init() ran, with its options.
    assert (vol_path / "memo-was-here").read_text() == GREETING

    r = d.manager("GET", "/volumes")
    assert r.status == 200, r.body
    by_name = {v["name"]: v for v in r.json()["volumes"]}
    assert by_name["notes"]["backend"] == "memo"
    assert by_name["notes"]["path"] == str(vol_path)
    assert "xattr" in by_name["notes"]["capabilities"]
    assert by_name["plain"]["backend"] == "vfs"
    assert "xattr" not in by_name["plain"]["capabilities"]

    vfid = new_vfid()
    r = d.manager("POST", "/folder/create", {"volume": "notes", "vfid": vfid})
    assert r.status == 204, r.body
    r = d.manager(
        "POST", "/folder/file/mkdir", {"volume": "notes", "vfid": vfid, "relpath": "docs/2024"}
    )
    assert r.status == 200, r.body
    r = d.manager("POST", "/folder/file/list", {"volume": "notes", "vfid": vfid, "relpath": "docs"})
    assert r.status == 200, r.body
    items = r.json()["items"]
    assert [(i["name"], i["type"]) for i in items] == [("2024", "DIRECTORY")]

    # It really is on the memo volume's disk, in the Backend.AI layout.
    r = d.manager("GET", "/folder/mount", {"volume": "notes", "vfid": vfid})
    assert r.status == 200, r.body
    mount = Path(r.json()["path"])
    assert mount.is_relative_to(vol_path.resolve())
    assert (mount / "docs" / "2024").is_dir()
    # The same vfid does not exist on the other volume.
    r = d.manager("POST", "/folder/file/list", {"volume": "plain", "vfid": vfid})
    assert r.status == 404 and r.json()["code"] == "vfolder-not-found", r.body
    assert "volume notes ready (backend memo" in d.log_text()
