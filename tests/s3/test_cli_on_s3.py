"""storage-proxy-client against an s3 volume on the real S3 server: a 40 MB upload (a multipart
object, whose completion ETag RGW 16.2 leaves empty) ends verified, and downloads back intact."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

from client_cli import cli
from integration.test_client_cli import make_file


async def test_cli_upload_of_a_multipart_file_is_verified(
    start_daemon: Any, tmp_path: Path
) -> None:
    async with start_daemon("s3vol") as daemon:
        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        status, _ = await daemon.call(
            "POST", "/folder/create", volume="s3vol", vfid=vfid, owner="alice"
        )
        assert status == 204
        src = tmp_path / "forty.bin"
        sha = await asyncio.to_thread(make_file, src, 40_000_000)
        code, out, err = await cli(
            daemon, tmp_path, "upload", str(src), "s3vol", vfid, "d/forty.bin"
        )
        assert code == 0, err
        assert f"sha256 {sha} (verified)" in out
        dst = tmp_path / "back.bin"
        code, out, err = await cli(
            daemon, tmp_path, "download", "s3vol", vfid, "d/forty.bin", str(dst)
        )
        assert code == 0, err
        assert "sha256 verified" in out
        assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha


async def test_cli_parallel_parts_on_s3(start_daemon: Any, tmp_path: Path) -> None:
    """--parallel 3 on an s3 volume: partial uploads joined in the staging directory, the
    result sent as one object; a ranged download in parts comes back intact."""
    async with start_daemon("s3vol") as daemon:
        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        status, _ = await daemon.call(
            "POST", "/folder/create", volume="s3vol", vfid=vfid, owner="alice"
        )
        assert status == 204
        src = tmp_path / "parts.bin"
        sha = await asyncio.to_thread(make_file, src, 13_000_000)
        code, out, err = await cli(
            daemon, tmp_path, "upload", "--parallel", "3", str(src), "s3vol", vfid, "p.bin"
        )
        assert code == 0, err
        assert f"sha256 {sha} (verified)" in out
        dst = tmp_path / "back.bin"
        code, out, err = await cli(
            daemon, tmp_path, "download", "--parallel", "3", "s3vol", vfid, "p.bin", str(dst)
        )
        assert code == 0, err
        assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
