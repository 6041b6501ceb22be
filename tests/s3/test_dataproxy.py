"""Signed upload/download locations end to end: a client with nothing but the signed URL and
plain HTTP, on an s3 volume (native presigned URLs, checked by the real S3 server: signature,
expiry, Content-MD5, Content-Length) and on a vfs volume (``/signed/<token>``, checked by the
proxy itself)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from api_fixtures import Daemon

from storage_proxy.services.dataproxy import AREA_VFID


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


async def location(daemon: Daemon, data: bytes, **extra: Any) -> tuple[int, Any]:
    body = {"project": "flytesnacks", "domain": "development", "content_md5": md5_b64(data)}
    return await daemon.call("POST", "/dataproxy/upload-location", **{**body, **extra})


async def plain(method: str, url: str, **kw: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as resp:
        return resp.status, await resp.read()


def stored_keys(raw_s3: Any, native_url: str) -> list[str]:
    """The keys below the signed location's folder in its bucket."""
    bucket, key = native_url[len("s3://") :].split("/", 1)
    folder = key.rsplit("/", 1)[0] + "/"
    found = raw_s3.list_objects_v2(Bucket=bucket, Prefix=folder).get("Contents", [])
    return [o["Key"][len(folder) :] for o in found]


def area_files(tmp_path: Path) -> list[str]:
    """Every file of the signed-location area vfolder, staged ones included."""
    root = tmp_path.joinpath("vol1", *AREA_VFID.relative_parts)
    staging = tmp_path / "vol1" / ".uploads"
    found = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    found += [p.name for p in staging.rglob("*") if p.is_file()]
    return sorted(found)


async def test_upload_then_download_with_only_the_urls(dp_daemon: Daemon) -> None:
    data = os.urandom(300_000)
    status, loc = await location(dp_daemon, data, filename="model.bin", content_length=len(data))
    assert status == 200, loc
    folder = base64.b32encode(hashlib.md5(data).digest()).decode()
    assert loc["native_url"].endswith(f"/dataproxy/flytesnacks/development/{folder}/model.bin")
    assert loc["native_url"].startswith(("s3://", "file://vol1/"))
    assert loc["headers"]["Content-MD5"] == md5_b64(data)
    expires_at = datetime.fromisoformat(loc["expires_at"])
    assert abs(expires_at - datetime.now(UTC) - timedelta(hours=1)) < timedelta(seconds=30)
    status, _ = await plain("PUT", loc["signed_url"], data=data, headers=loc["headers"])
    assert status in (200, 201)

    status, link = await dp_daemon.call(
        "POST", "/dataproxy/download-link", native_url=loc["native_url"]
    )
    assert status == 200, link
    status, got = await plain("GET", link["signed_url"])
    assert status == 200 and got == data


async def test_folder_and_filename_rules(dp_daemon: Daemon) -> None:
    data = b"some bytes"
    status, loc = await location(dp_daemon, data)
    assert status == 200
    *_, folder, name = loc["native_url"].split("/")
    assert folder == base64.b32encode(hashlib.md5(data).digest()).decode()
    assert len(name) == 20 and name.isalnum()
    status, loc = await location(dp_daemon, data, filename_root="run-42", filename="a/b.txt")
    assert status == 200
    assert loc["native_url"].endswith("/dataproxy/flytesnacks/development/run-42/a/b.txt")


async def test_limits_are_refused_naming_them(dp_daemon: Daemon) -> None:
    status, err = await location(dp_daemon, b"x", expires_in=7200)
    assert status == 400 and "upload.max-expires-in" in err["detail"]
    status, err = await location(dp_daemon, b"x", content_length=100 * 1024 * 1024 + 1)
    assert status == 400 and "upload.max-size" in err["detail"]
    status, _ = await location(dp_daemon, b"x", expires_in="30m")
    assert status == 200
    status, err = await location(dp_daemon, b"x", content_md5=base64.b64encode(b"short").decode())
    assert status == 400 and "16 bytes" in err["detail"]
    status, _ = await dp_daemon.call(
        "POST", "/dataproxy/upload-location", domain="d", content_md5=md5_b64(b"x")
    )
    assert status == 400
    status, _ = await location(dp_daemon, b"x", project="../etc")
    assert status == 400


async def test_existing_target_conflicts_unless_same_md5(dp_daemon: Daemon) -> None:
    first, other = b"first version", b"second version"
    where = {"filename_root": "fixed", "filename": "data.csv"}
    _, loc = await location(dp_daemon, first, **where)
    status, _ = await plain("PUT", loc["signed_url"], data=first, headers=loc["headers"])
    assert status in (200, 201)
    status, err = await location(dp_daemon, other, **where)
    assert status == 409, err
    status, _ = await location(dp_daemon, first, **where)
    assert status == 200


async def test_download_link_rules(dp_daemon: Daemon) -> None:
    data = b"payload"
    _, loc = await location(dp_daemon, data, filename="p.bin")
    missing = loc["native_url"]
    status, _ = await dp_daemon.call("POST", "/dataproxy/download-link", native_url=missing)
    assert status == 404
    await plain("PUT", loc["signed_url"], data=data, headers=loc["headers"])
    status, link = await dp_daemon.call(
        "POST", "/dataproxy/download-link", native_url=missing, expires_in=10 * 86400
    )
    assert status == 200  # capped, not refused
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert expires_at - datetime.now(UTC) <= timedelta(hours=1, seconds=5)
    status, _ = await dp_daemon.call(
        "POST", "/dataproxy/download-link", native_url="s3://elsewhere/x"
    )
    assert status == 400


async def test_presigned_s3_url_signs_md5_length_and_expiry(start_daemon: Any) -> None:
    async with start_daemon("s3vol") as daemon:
        data = b"signed"
        _, loc = await location(daemon, data, content_length=len(data), expires_in=600)
        query = parse_qs(urlsplit(loc["signed_url"]).query)
        signed = query["X-Amz-SignedHeaders"][0].split(";")
        assert "content-md5" in signed and "content-length" in signed
        assert query["X-Amz-Expires"] == ["600"]
        assert loc["native_url"].startswith("s3://t-")


# -- the S3 server's own checks on native presigned URLs ---------------------------------------
async def test_presigned_put_is_refused_by_s3_unless_it_matches(
    start_daemon: Any, raw_s3: Any
) -> None:
    async with start_daemon("s3vol", upload={"max-size": "1Mi"}) as daemon:
        data = b"the real bytes" * 100
        status, loc = await location(daemon, data, filename="f.bin", content_length=len(data))
        assert status == 200, loc
        url, headers = loc["signed_url"], loc["headers"]

        tampered = data[:-1] + b"X"  # same length, the body no longer has the signed MD5
        status, body = await plain("PUT", url, data=tampered, headers=headers)
        assert status == 400 and b"BadDigest" in body
        md5_only = {"Content-MD5": headers["Content-MD5"]}  # the body's real length is sent
        status, body = await plain("PUT", url, data=data + b"more", headers=md5_only)
        assert status == 403 and b"SignatureDoesNotMatch" in body  # not the signed length
        wrong = {**headers, "Content-MD5": md5_b64(tampered)}  # not the signed Content-MD5
        status, body = await plain("PUT", url, data=tampered, headers=wrong)
        assert status == 403 and b"SignatureDoesNotMatch" in body
        status, _ = await plain("PUT", url, data=data, headers={})  # signed headers left out
        assert status == 403
        assert stored_keys(raw_s3, loc["native_url"]) == []

        status, _ = await plain("PUT", url, data=data, headers=headers)
        assert status == 200
        assert stored_keys(raw_s3, loc["native_url"]) == ["f.bin"]


async def test_expired_presigned_urls_are_refused_by_s3(start_daemon: Any, raw_s3: Any) -> None:
    async with start_daemon("s3vol") as daemon:
        data = b"late"
        _, loc = await location(daemon, data, content_length=len(data), expires_in=1)
        _, keep = await location(daemon, data, filename="kept.bin", content_length=len(data))
        await plain("PUT", keep["signed_url"], data=data, headers=keep["headers"])
        status, link = await daemon.call(
            "POST", "/dataproxy/download-link", native_url=keep["native_url"], expires_in=1
        )
        assert status == 200, link
        status, got = await plain("GET", link["signed_url"])
        assert status == 200 and got == data
        await asyncio.sleep(2.2)
        status, body = await plain("PUT", loc["signed_url"], data=data, headers=loc["headers"])
        assert status == 403 and b"AccessDenied" in body
        assert stored_keys(raw_s3, loc["native_url"]) == ["kept.bin"]  # the same MD5 folder
        status, body = await plain("GET", link["signed_url"])
        assert status == 403 and b"AccessDenied" in body


async def test_presigned_get_is_bound_to_its_key(start_daemon: Any) -> None:
    async with start_daemon("s3vol") as daemon:
        data = b"mine"
        _, loc = await location(daemon, data, filename="a.bin", content_length=len(data))
        await plain("PUT", loc["signed_url"], data=data, headers=loc["headers"])
        _, link = await daemon.call(
            "POST", "/dataproxy/download-link", native_url=loc["native_url"]
        )
        other = link["signed_url"].replace("/a.bin?", "/b.bin?")
        assert other != link["signed_url"]
        status, body = await plain("GET", other)
        assert status == 403 and b"SignatureDoesNotMatch" in body


# -- the proxy's own checks on POSIX volumes ---------------------------------------------------
async def test_posix_refuses_wrong_md5_oversize_and_expired(
    start_daemon: Any, tmp_path: Path
) -> None:
    async with start_daemon("vol1", upload={"max-size": "1Mi"}) as daemon:
        data = b"exactly these bytes"
        _, loc = await location(daemon, data, filename="x.bin", content_length=len(data))
        url, headers = loc["signed_url"], loc["headers"]
        md5_only = {"Content-MD5": headers["Content-MD5"]}

        status, body = await plain("PUT", url, data=b"X" * len(data), headers=md5_only)
        assert status == 400 and b"bad-digest" in body
        wrong = {**headers, "Content-MD5": md5_b64(b"nope")}
        status, body = await plain("PUT", url, data=data, headers=wrong)
        assert status == 400 and b"bad-digest" in body
        status, body = await plain("PUT", url, data=data + b"!", headers=md5_only)
        assert status == 413 and b"entity-too-large" in body

        big = b"y" * (2 << 20)  # no declared length: upload.max-size caps the body
        _, open_loc = await location(daemon, big, filename="y.bin")

        async def chunked() -> Any:
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        status, body = await plain(
            "PUT", open_loc["signed_url"], data=chunked(), headers=open_loc["headers"]
        )
        assert status == 413
        assert area_files(tmp_path) == []  # nothing left behind, not even staging files

        _, short = await location(daemon, data, filename="z.bin", expires_in=1)
        await asyncio.sleep(2.1)
        status, body = await plain("PUT", short["signed_url"], data=data, headers=short["headers"])
        assert status == 401 and b"expired" in body
        assert area_files(tmp_path) == []

        status, _ = await plain("PUT", url, data=data, headers=headers)
        assert status == 201 and area_files(tmp_path) == [
            "dataproxy/flytesnacks/development/"
            + base64.b32encode(hashlib.md5(data).digest()).decode()
            + "/x.bin"
        ]
        status, link = await daemon.call(
            "POST", "/dataproxy/download-link", native_url=loc["native_url"]
        )
        status, _ = await plain("PUT", link["signed_url"], data=data, headers=headers)
        assert status == 401  # a download token cannot upload
        status, got = await plain("GET", link["signed_url"], headers={"Range": "bytes=8-11"})
        assert status == 206 and got == data[8:12]
