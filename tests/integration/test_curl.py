"""curl, a real HTTP client, against the client API: ranges, HEAD, resume, tus PATCH, PUT."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from api_fixtures import Daemon

VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"


async def curl(*args: str) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def prepare(daemon: Daemon, tmp_path: Path) -> tuple[bytes, str]:
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID)
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    body = os.urandom(200_000)
    Path(mount["path"], "f.bin").write_bytes(body)
    _, tok = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath="f.bin"
    )
    return body, str(daemon.client.make_url("/download")) + f"?token={tok['token']}"


async def test_curl_ranges_and_head(daemon: Daemon, tmp_path: Path) -> None:
    body, url = await prepare(daemon, tmp_path)
    code, out, err = await curl("-r", "1000-1999", url)
    assert code == 0, err
    assert out == body[1000:2000]
    code, out, _ = await curl("-r", "-500", url)
    assert out == body[-500:]
    code, out, _ = await curl("-I", url)
    headers = out.decode().lower()
    assert "200" in headers.splitlines()[0]
    assert f"content-length: {len(body)}" in headers and "etag:" in headers
    code, out, _ = await curl("-o", "/dev/null", "-w", "%{http_code}", "-r", "300000-", url)
    assert out == b"416"


async def test_curl_resumes_a_partial_download(daemon: Daemon, tmp_path: Path) -> None:
    body, url = await prepare(daemon, tmp_path)
    dst = tmp_path / "out.bin"
    dst.write_bytes(body[:70_000])
    code, _, err = await curl("-C", "-", "-o", str(dst), url)
    assert code == 0, err
    assert dst.read_bytes() == body


async def test_curl_tus_patch_and_put(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID)
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1 << 20))
    for method, name in (("PATCH", "patched.bin"), ("PUT", "put.bin")):
        _, tok = await daemon.call(
            "POST", "/folder/file/upload", volume="vol1", vfid=VFID, relpath=name, size=1 << 20
        )
        url = str(daemon.client.make_url("/upload")) + f"?token={tok['token']}"
        code, out, err = await curl(
            "-X",
            method,
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            "Expect:",
            "-T",
            str(src),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        )
        assert code == 0, err
        assert out == (b"204" if method == "PATCH" else b"201")
        assert Path(mount["path"], name).read_bytes() == src.read_bytes()
