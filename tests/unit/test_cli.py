"""The storage-proxy command line: config check (exit 2 names the key), volumes and backends."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from storage_proxy.cli import main

DAEMON = """
[storage-proxy]
data-dir = "./data"
[volume.v1]
backend = "vfs"
path = "./v1"
"""


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "sp.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    return result.exit_code, result.output


def test_config_check_ok(tmp_path: Path) -> None:
    code, out = check(tmp_path, DAEMON)
    assert code == 0 and "v1 (vfs)" in out


def test_config_check_unknown_backend_lists_available(tmp_path: Path) -> None:
    code, out = check(tmp_path, DAEMON.replace('"vfs"', '"nosuch"'))
    assert code == 2
    assert "volume.v1.backend" in out and "nosuch" in out and "vfs" in out


def test_config_check_bad_backend_option(tmp_path: Path) -> None:
    code, out = check(tmp_path, DAEMON + '[volume.v1.options]\nquota-usage-ttl = "soon"\n')
    assert code == 2 and "volume.v1.options" in out


def test_delta_view_section_is_validated_by_its_schema(tmp_path: Path) -> None:
    good = (
        DAEMON
        + '[delta-view]\nport = 18099\n[delta-view.table-mapping]\nsales = "s3://lake/sales"\n'
    )
    code, out = check(tmp_path, good)
    assert code == 0, out
    code, out = check(tmp_path, good.replace('"s3://lake/sales"', '"http://not-s3"'))
    assert code == 2 and "delta-view" in out


def test_volumes_list_json(tmp_path: Path) -> None:
    path = tmp_path / "sp.toml"
    path.write_text(DAEMON)
    result = CliRunner().invoke(main, ["volumes", "list", "--config", str(path), "--json"])
    assert result.exit_code == 0
    [vol] = json.loads(result.output)["volumes"]
    assert vol["name"] == "v1" and vol["backend"] == "vfs"
    assert vol["path"] == str(tmp_path / "v1")
    assert {"vfolder", "quota"} <= set(vol["capabilities"])


def test_backends_list(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["backends", "list"])
    assert result.exit_code == 0 and "storage_proxy_vfs:VfsVolume" in result.output
