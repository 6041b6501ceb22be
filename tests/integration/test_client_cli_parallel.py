"""storage-proxy-client --parallel: a file moved as parts at once, each part resumed on its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Daemon
from client_cli import VFID, cli, start_cli
from test_client_cli import make_file

from storage_proxy.client.parallel import ALIGN, choose_parallel, split
from storage_proxy.core.errors import Conflict


@pytest.fixture
async def alice_root(daemon: Daemon) -> Path:
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID, owner="alice")
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    return Path(mount["path"])


def test_parts_are_chosen_by_size_and_aligned() -> None:
    assert choose_parallel(10 << 20, None) == 1
    assert choose_parallel(64 << 20, None) == 2
    assert choose_parallel(1 << 30, None) == 4
    assert choose_parallel(3 << 20, 8) == 3  # no part below ALIGN
    parts = split(10 * ALIGN + 5, 3)
    assert parts == [(0, 4 * ALIGN), (4 * ALIGN, 8 * ALIGN), (8 * ALIGN, 10 * ALIGN + 5)]


async def test_parallel_upload_killed_midway_resumes_each_part(
    daemon: Daemon, alice_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    sha = make_file(src, 48 << 20)
    args = ["upload", "--parallel", "3", "--chunk-size", str(1 << 20)]
    proc = await start_cli(daemon, tmp_path, *args, str(src), "vol1", VFID, "data/big.bin")
    staged_dir = daemon.ctx.volumes.get("vol1").mount_path / ".uploads"
    for _ in range(6000):  # wait until every part has a few MiB, then kill the client
        staged = list(staged_dir.glob("*")) if staged_dir.exists() else []
        if len(staged) == 3 and all(p.stat().st_size >= 3 << 20 for p in staged):
            break
        await asyncio.sleep(0.01)
    proc.kill()
    await proc.wait()
    assert not (alice_root / "data" / "big.bin").exists()
    state = json.loads((tmp_path / "state" / "storage-proxy-client" / "uploads.json").read_text())
    [saved] = state.values()
    parts = saved["parts"]
    assert [(p["start"], p["end"]) for p in parts] == split(48 << 20, 3)
    # one part is lost on the server (expired, say): it starts again, the others resume
    lost = parts[1]["url"].rsplit("/", 1)[1]
    session = await daemon.ctx.metadata.get_upload(lost)
    assert session is not None
    # The killed client's last PATCHes may still hold their parts a while (the server notices
    # the lost connections when it next reads them): wait until no part is held.
    volume = daemon.ctx.volumes.get("vol1")
    for part in parts:
        await _until_free(volume, part["url"].rsplit("/", 1)[1])
    await daemon.ctx.uploads.terminate(session)
    code, out, err = await cli(
        daemon, tmp_path, "upload", "--parallel", "3", str(src), "vol1", VFID, "data/big.bin"
    )
    assert code == 0, err
    assert "resuming at byte" in err
    assert f"sha256 {sha} (verified)" in out
    assert hashlib.sha256((alice_root / "data" / "big.bin").read_bytes()).hexdigest() == sha
    assert list(staged_dir.iterdir()) == []  # the partials were released
    assert (
        json.loads((tmp_path / "state" / "storage-proxy-client" / "uploads.json").read_text()) == {}
    )


async def _until_free(volume: Any, session_id: str, within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            async with volume.upload_hold(session_id):
                return
        except Conflict:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"upload {session_id} is still held") from None
            await asyncio.sleep(0.05)


async def test_parallel_download_resumes_each_part(
    daemon: Daemon, alice_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "f.bin"
    sha = make_file(src, 10 << 20)
    code, _, err = await cli(
        daemon, tmp_path, "upload", "--parallel", "3", str(src), "vol1", VFID, "f.bin"
    )
    assert code == 0, err
    data = src.read_bytes()
    dst = tmp_path / "out.bin"
    # as an interrupted run leaves it: the parts' progress recorded, bytes in a pre-sized .part
    ranges = split(len(data), 3)
    done = [1 << 20, 0, ranges[2][1] - ranges[2][0]]
    part = bytearray(len(data))
    for (start, _end), n in zip(ranges, done, strict=True):
        part[start : start + n] = data[start : start + n]
    (tmp_path / "out.bin.part").write_bytes(bytes(part))
    record = {
        "size": len(data),
        "sha256": sha,
        "parts": [
            {"start": s, "end": e, "url": None, "done": n}
            for (s, e), n in zip(ranges, done, strict=True)
        ],
    }
    (tmp_path / "out.bin.part.json").write_text(json.dumps(record))
    code, out, err = await cli(
        daemon, tmp_path, "download", "--parallel", "3", "vol1", VFID, "f.bin", str(dst)
    )
    assert code == 0, err
    assert f"resuming at byte {sum(done)}" in err
    assert "sha256 verified" in out
    assert dst.read_bytes() == data
    assert not (tmp_path / "out.bin.part").exists()
    assert not (tmp_path / "out.bin.part.json").exists()
    dst.unlink()
    code, out, err = await cli(
        daemon, tmp_path, "download", "--parallel", "4", "vol1", VFID, "f.bin", str(dst)
    )
    assert code == 0, err
    assert dst.read_bytes() == data
