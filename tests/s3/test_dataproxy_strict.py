"""Native presigned upload URLs against a strict S3 gate (signature, expiry, Content-MD5 checked
as real S3 does; moto behind it stores): wrong MD5, oversize body and an expired URL are each
refused and leave no object behind; the right upload lands."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from api_fixtures import MANAGER_SECRET, Daemon, raw_config
from s3.strict_gate import make_gate

from contract.backend_s3 import ACCESS_KEY, SECRET_KEY, s3_options
from storage_proxy.api.client import create_client_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.config import validate
from storage_proxy.context import build_root_context


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture
async def gated(moto: Any, tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Daemon]:
    gate = TestServer(make_gate(moto.endpoint, {ACCESS_KEY: SECRET_KEY}), host="127.0.0.1")
    await gate.start_server()
    endpoint = str(gate.make_url("")).rstrip("/")
    cfg = raw_config(tmp_path)
    cfg["volume"] = {  # only the S3 volume, behind the strict gate
        "s3vol": {
            "backend": "s3",
            "path": str(tmp_path / "s3"),
            "options": s3_options(endpoint=endpoint),
        }
    }
    cfg["dataproxy"] = {"volume": "s3vol", "upload": {"max-size": "1Mi"}}
    cfg = validate(cfg)
    ctx = await build_root_context(cfg)
    try:
        manager = await aiohttp_client(create_manager_app(ctx))
        manager.session.headers[AUTH_HEADER] = MANAGER_SECRET
        client = await aiohttp_client(create_client_app(ctx))
        yield Daemon(ctx, manager, client)
    finally:
        await ctx.close()
        await gate.close()


async def put(url: str, data: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.put(url, data=data, headers=headers) as r:
        return r.status


def stored_keys(raw_s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in raw_s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_presigned_put_is_checked_like_real_s3(gated: Daemon, raw_s3: Any) -> None:
    data = b"the real bytes" * 100
    status, loc = await gated.call(
        "POST",
        "/dataproxy/upload-location",
        project="p",
        domain="d",
        content_md5=md5_b64(data),
        content_length=len(data),
        filename="f.bin",
    )
    assert status == 200, loc
    bucket = loc["native_url"][len("s3://") :].split("/", 1)[0]
    url, headers = loc["signed_url"], loc["headers"]

    tampered = data[:-1] + b"X"  # same length, wrong MD5 for the signed Content-MD5
    assert await put(url, tampered, headers) == 400
    oversize = {"Content-MD5": headers["Content-MD5"]}  # the body's real length is sent
    assert await put(url, data + b"more", oversize) == 403  # not the signed Content-Length
    assert await put(url, data, {**headers, "Content-MD5": md5_b64(tampered)}) == 403
    assert stored_keys(raw_s3, bucket) == []

    assert await put(url, data, headers) == 200
    assert [k.rsplit("/", 1)[1] for k in stored_keys(raw_s3, bucket)] == ["f.bin"]


async def test_expired_presigned_url_is_refused(gated: Daemon, raw_s3: Any) -> None:
    data = b"late"
    status, loc = await gated.call(
        "POST",
        "/dataproxy/upload-location",
        project="p",
        domain="d",
        content_md5=md5_b64(data),
        content_length=len(data),
        expires_in=1,
    )
    assert status == 200, loc
    bucket = loc["native_url"][len("s3://") :].split("/", 1)[0]
    await asyncio.sleep(2.2)
    assert await put(loc["signed_url"], data, loc["headers"]) == 403
    assert stored_keys(raw_s3, bucket) == []
