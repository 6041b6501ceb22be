"""storage-proxy-client against a running client API: resumable upload, resumable download, ls.

The daemon runs in-process on a real TCP port; the CLI runs as a subprocess, as a person would
run it, and is killed mid-upload to prove that re-running resumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from api_fixtures import Daemon
from client_cli import VFID, alice_folder, cli, cli_env


@pytest.fixture
async def alice_vfolder(daemon: Daemon) -> Path:
    return await alice_folder(daemon)


def make_file(path: Path, size: int) -> str:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            chunk = (i.to_bytes(8, "big") + block)[: min(len(block), size - written)]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            i += 1
    return digest.hexdigest()


async def test_upload_killed_midway_resumes(
    daemon: Daemon, alice_vfolder: Path, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    sha = make_file(src, 48 << 20)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storage_proxy.client.cli",
        "-q",
        "upload",
        "--chunk-size",
        str(1 << 20),
        str(src),
        "vol1",
        VFID,
        "data/big.bin",
        env=cli_env(daemon, tmp_path),
    )
    staged_dir = daemon.ctx.volumes.get("vol1").mount_path / ".uploads"
    for _ in range(400):  # wait until a few MiB have arrived, then kill the client
        staged = list(staged_dir.glob("*")) if staged_dir.exists() else []
        if staged and staged[0].stat().st_size >= 4 << 20:
            break
        await asyncio.sleep(0.01)
    proc.kill()
    await proc.wait()
    assert not (alice_vfolder / "data" / "big.bin").exists()
    code, out, err = await cli(daemon, tmp_path, "upload", str(src), "vol1", VFID, "data/big.bin")
    assert code == 0, err
    assert "resuming at byte" in err
    assert f"sha256 {sha} (verified)" in out
    assert hashlib.sha256((alice_vfolder / "data" / "big.bin").read_bytes()).hexdigest() == sha


async def test_one_gib_round_trip(daemon: Daemon, alice_vfolder: Path, tmp_path: Path) -> None:
    src = tmp_path / "gib.bin"
    sha = await asyncio.to_thread(make_file, src, 1 << 30)
    code, out, err = await cli(daemon, tmp_path, "upload", str(src), "vol1", VFID, "gib.bin")
    assert code == 0, err
    src.unlink()
    dst = tmp_path / "back.bin"
    code, out, err = await cli(daemon, tmp_path, "download", "vol1", VFID, "gib.bin", str(dst))
    assert code == 0, err
    assert "sha256 verified" in out
    digest = await asyncio.to_thread(lambda: hashlib.sha256(dst.read_bytes()).hexdigest())
    assert digest == sha


async def test_download_resumes_a_part_file(
    daemon: Daemon, alice_vfolder: Path, tmp_path: Path
) -> None:
    src = tmp_path / "f.bin"
    make_file(src, 3 << 20)
    code, _, err = await cli(daemon, tmp_path, "upload", str(src), "vol1", VFID, "f.bin")
    assert code == 0, err
    dst = tmp_path / "out.bin"
    (tmp_path / "out.bin.part").write_bytes(src.read_bytes()[: 1 << 20])
    code, out, err = await cli(daemon, tmp_path, "download", "vol1", VFID, "f.bin", str(dst))
    assert code == 0, err
    assert "resuming at byte 1048576" in err
    assert dst.read_bytes() == src.read_bytes()
    assert not (tmp_path / "out.bin.part").exists()


async def test_ls_and_failures(daemon: Daemon, alice_vfolder: Path, tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    code, _, _ = await cli(daemon, tmp_path, "upload", str(src), "vol1", VFID, "dir/x.txt")
    assert code == 0
    code, out, _ = await cli(daemon, tmp_path, "ls", "vol1", VFID, "dir/")
    assert code == 0 and out.strip().endswith("dir/x.txt")
    code, _, err = await cli(
        daemon, tmp_path, "upload", str(src), "vol1", VFID, "y.txt", token="not-a-token"
    )
    assert code == 1 and "invalid-token" in err
    mallory = daemon.ctx.tokens.issue_user("mallory", [], timedelta(hours=1))
    code, _, err = await cli(
        daemon, tmp_path, "download", "vol1", VFID, "dir/x.txt", str(tmp_path / "z"), token=mallory
    )
    assert code == 1 and "404" in err and not (tmp_path / "z").exists()
