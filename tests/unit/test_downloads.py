"""Session tokens from the manager API and ``GET|HEAD /download`` on the client API."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from api_fixtures import TOKEN_SECRET, Daemon

QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"
BODY = bytes(range(256)) * 40  # 10,240 bytes


async def setup_file(daemon: Daemon, relpath: str = "dir/data.bin", body: bytes = BODY) -> Path:
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID)
    assert status in (204, 409)
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    path = Path(mount["path"], relpath)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


async def download_token(daemon: Daemon, relpath: str, **extra: object) -> str:
    status, body = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath=relpath, **extra
    )
    assert status == 200, body
    return str(body["token"])


async def test_token_has_backend_ai_claims(daemon: Daemon) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    claims = jwt.decode(token, TOKEN_SECRET, algorithms=["HS256"])
    assert claims["op"] == "download"
    assert (claims["volume"], claims["vfid"], claims["relpath"]) == ("vol1", VFID, "dir/data.bin")
    assert claims["exp"] > time.time() + 3600  # session-expire defaults to one day


async def test_token_for_missing_file_is_404(daemon: Daemon) -> None:
    await setup_file(daemon)
    status, body = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath="nope"
    )
    assert (status, body["code"]) == (404, "file-not-found")


async def test_full_download_with_validators(daemon: Daemon) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.get("/download", params={"token": token})
    assert resp.status == 200
    assert await resp.read() == BODY
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["ETag"].startswith('"')
    assert "Last-Modified" in resp.headers
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    again = await daemon.client.get(
        "/download", params={"token": token}, headers={"If-None-Match": resp.headers["ETag"]}
    )
    assert again.status == 304


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, 10239),
        ("bytes=-10", 10230, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ],
)
async def test_ranges(daemon: Daemon, header: str, start: int, end: int) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.get("/download", params={"token": token}, headers={"Range": header})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert await resp.read() == BODY[start : end + 1]


async def test_unsatisfiable_range_is_416(daemon: Daemon) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.get(
        "/download", params={"token": token}, headers={"Range": "bytes=20000-"}
    )
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(BODY)}"


async def test_head_answers_headers_without_body(daemon: Daemon) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.head("/download", params={"token": token})
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(BODY)
    assert await resp.read() == b""


async def test_rfc5987_filename(daemon: Daemon) -> None:
    await setup_file(daemon, "résumé 2024.txt", b"hi")
    token = await download_token(daemon, "résumé 2024.txt")
    resp = await daemon.client.get("/download", params={"token": token})
    disposition = resp.headers["Content-Disposition"]
    assert "filename*=UTF-8''" + quote("résumé 2024.txt", safe="") in disposition
    assert 'filename="r_sum_ 2024.txt"' in disposition


@pytest.mark.parametrize("token", ["", "garbage", None])
async def test_bad_tokens_are_400_as_in_backend_ai(daemon: Daemon, token: str | None) -> None:
    """26.09: a token is a query parameter (400 invalid-api-params, as storage-proxy 26.9.6)."""
    params = {"token": token} if token is not None else {}
    resp = await daemon.client.get("/download", params=params)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid-token"
    assert body["type"] == "https://api.backend.ai/probs/storage/invalid-api-params"


@pytest.mark.parametrize("token", ["", "garbage", None])
async def test_bad_tokens_are_400_in_the_23_09_dialect_too(
    legacy_daemon: Daemon, token: str | None
) -> None:
    """storage-proxy 23.9.10 answers them alike (400 invalid-api-params naming the token)."""
    params = {"token": token} if token is not None else {}
    resp = await legacy_daemon.client.get("/download", params=params)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid-token" and set(body["data"]) == {"token"}
    assert body["type"] == "https://api.backend.ai/probs/storage/invalid-api-params"


async def test_expired_and_wrong_op_tokens(daemon: Daemon) -> None:
    await setup_file(daemon)
    base = {"volume": "vol1", "vfid": VFID, "relpath": "dir/data.bin"}
    expired = jwt.encode({**base, "op": "download", "exp": int(time.time()) - 5}, TOKEN_SECRET)
    upload_op = jwt.encode({**base, "op": "upload", "exp": int(time.time()) + 60}, TOKEN_SECRET)
    forged = jwt.encode(
        {**base, "op": "download", "exp": int(time.time()) + 60},
        "another-secret-that-is-long-enough-for-hs256",
    )
    for token in (expired, upload_op, forged):
        resp = await daemon.client.get("/download", params={"token": token})
        assert (resp.status, (await resp.json())["code"]) == (400, "invalid-token")


async def test_directory_needs_archive_and_zip_streams(daemon: Daemon) -> None:
    path = await setup_file(daemon)
    (path.parent / "sub").mkdir()
    (path.parent / "sub" / "x.txt").write_text("x")
    (path.parent / "empty").mkdir()
    (path.parent / "escape").symlink_to("/etc/passwd")
    token = await download_token(daemon, "dir")
    resp = await daemon.client.get("/download", params={"token": token})
    assert (resp.status, (await resp.json())["code"]) == (400, "is-a-directory")
    token = await download_token(daemon, "dir", archive=True)
    resp = await daemon.client.get("/download", params={"token": token})
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert sorted(archive.namelist()) == ["data.bin", "empty/", "sub/", "sub/x.txt"]
    assert archive.read("data.bin") == BODY


async def test_symlink_escape_is_refused_at_download(daemon: Daemon, tmp_path: Path) -> None:
    path = await setup_file(daemon)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (path.parent / "link").symlink_to(secret)
    status, body = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath="dir/link"
    )
    token = jwt.encode(
        {
            "op": "download",
            "volume": "vol1",
            "vfid": VFID,
            "relpath": "dir/link",
            "exp": int(time.time()) + 60,
        },
        TOKEN_SECRET,
    )
    resp = await daemon.client.get("/download", params={"token": token})
    assert resp.status == 400 and (await resp.json())["code"] == "invalid-path"


@pytest.mark.parametrize(
    "header",
    ["bytes=0-9,20-29", "bytes=5-2", "items=0-9", "bytes=٣-9", "bytes=²-", "bytes=1-2, 4-5"],
)
async def test_ranges_this_server_does_not_serve_are_ignored(daemon: Daemon, header: str) -> None:
    """RFC 9110 §14.2: several ranges, another unit, an invalid spec: the whole file, 200."""
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.get("/download", params={"token": token}, headers={"Range": header})
    assert resp.status == 200 and await resp.read() == BODY


@pytest.mark.parametrize("header", ["bytes=-0", "bytes=10240-", "bytes=99999-100000"])
async def test_unsatisfiable_ranges_are_416_problem_json(daemon: Daemon, header: str) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    resp = await daemon.client.get("/download", params={"token": token}, headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "range-not-satisfiable"


async def test_if_range_mismatch_sends_the_whole_file(daemon: Daemon) -> None:
    await setup_file(daemon)
    token = await download_token(daemon, "dir/data.bin")
    headers = {"Range": "bytes=0-9", "If-Range": '"stale-etag"'}
    resp = await daemon.client.get("/download", params={"token": token}, headers=headers)
    assert resp.status == 200 and await resp.read() == BODY
    etag = resp.headers["ETag"]
    headers["If-Range"] = etag
    resp = await daemon.client.get("/download", params={"token": token}, headers=headers)
    assert resp.status == 206 and await resp.read() == BODY[:10]
    resp = await daemon.client.get(
        "/download", params={"token": token}, headers={"If-None-Match": etag}
    )
    assert resp.status == 304


async def test_zip_keeps_names_that_are_not_utf8(daemon: Daemon) -> None:
    """A file whose name is not valid UTF-8 once cut every zip of its directory short."""
    path = await setup_file(daemon)
    raw = bytes(path.parent) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    (path.parent / "z-last.txt").write_bytes(b"after it")
    token = await download_token(daemon, "dir", archive=True)
    resp = await daemon.client.get("/download", params={"token": token})
    assert resp.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.testzip() is None
    infos = {i.orig_filename: i for i in archive.infolist()}
    assert "z-last.txt" in infos and archive.read("z-last.txt") == b"after it"
    latin = [i for i in archive.infolist() if i.file_size == len(b"latin-1 name")]
    assert len(latin) == 1 and not latin[0].flag_bits & 0x800  # raw bytes, not flagged UTF-8
