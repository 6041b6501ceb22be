"""The web UI and the reference page ship inside the package: a wheel built from the source tree
carries every static file, and nothing needs building at install."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from e2e_support import build_wheel

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "storage_proxy" / "ui_static"


def test_wheel_carries_the_static_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    wheel = build_wheel(src, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {f"storage_proxy/ui_static/{p.name}" for p in STATIC.iterdir() if p.is_file()}
    assert {"storage_proxy/ui_static/index.html", "storage_proxy/ui_static/docs.js"} <= expected
    assert expected <= names, sorted(expected - names)
    assert "storage_proxy/api/openapi/client.py" in names
