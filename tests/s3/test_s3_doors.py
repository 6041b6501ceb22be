"""Downloads from an s3 volume through the daemon, on the real S3 server: a directory streams as
a zip as on POSIX volumes, and a client hanging up mid-download is no error of ours."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from api_fixtures import Daemon

from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID

MiB = 1 << 20


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def s3_daemon(start_daemon: Any) -> AsyncIterator[Daemon]:
    async with start_daemon("s3vol") as daemon:
        yield daemon


async def filled(daemon: Daemon, files: dict[str, bytes]) -> VFolderID:
    vfid = VFolderID.parse(f"user:{uuid.uuid4()}/{uuid.uuid4().hex}")
    status, body = await daemon.call("POST", "/folder/create", volume="s3vol", vfid=str(vfid))
    assert status == 204, body
    volume = daemon.ctx.volumes.get("s3vol")
    for name, data in files.items():
        await volume.write(vfid, RelPath.parse(name), one(data))
    return vfid


async def token(daemon: Daemon, vfid: VFolderID, relpath: str, archive: bool = False) -> str:
    status, body = await daemon.call(
        "POST", "/folder/file/download", volume="s3vol", vfid=str(vfid), relpath=relpath,
        archive=archive,
    )  # fmt: skip
    assert status == 200, body
    return str(body["token"])


async def test_a_directory_downloads_as_a_zip(s3_daemon: Daemon) -> None:
    files = {"d/a.txt": b"alpha", "d/sub/b.bin": os.urandom(3 * MiB), "d/sub/c": b"", "e": b"x"}
    vfid = await filled(s3_daemon, files)
    resp = await s3_daemon.client.get(f"/download?token={await token(s3_daemon, vfid, 'd', True)}")
    assert resp.status == 200 and resp.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await resp.read())) as archive:
        got = {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    assert got == {"a.txt": b"alpha", "sub/b.bin": files["d/sub/b.bin"], "sub/c": b""}
    resp = await s3_daemon.client.get(f"/download?token={await token(s3_daemon, vfid, 'd')}")
    assert resp.status == 400  # a directory without archive=true: said so, not streamed


async def test_a_client_hanging_up_mid_download_is_not_an_error(
    s3_daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    vfid = await filled(s3_daemon, {"big.bin": os.urandom(32 * MiB)})
    url = s3_daemon.client.make_url(f"/download?token={await token(s3_daemon, vfid, 'big.bin')}")
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            await resp.content.readexactly(1 * MiB)
        # leaving the block closes the connection with most of the body unread
    await asyncio.sleep(0.5)
    assert "unhandled error" not in caplog.text
    assert "Traceback" not in caplog.text
    resp = await s3_daemon.client.get("/status")
    assert resp.status == 200
