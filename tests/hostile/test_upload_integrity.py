"""Uploads under attack: a PUT racing a PATCH, a quota cut in the middle of a write, a revoked
user finishing an upload, a deferred length declared shorter than what was sent, a client that
hangs up half-way.  Nothing corrupt is ever published, nothing is written after a descriptor
closed, and nobody keeps a right they lost."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import time

import aiohttp
import pytest
from harness import TOKEN_SECRET, Tenant, user_token

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


async def _upload_token(t: Tenant, relpath: str, size: int) -> str:
    r = t.manager("POST", "/folder/file/upload", {"relpath": relpath, "size": size})
    assert r.status == 200, r
    return str(r.json()["token"])


async def _slow_body(data: bytes, pieces: int, pause: float):  # type: ignore[no-untyped-def]
    step = len(data) // pieces
    for i in range(pieces):
        yield data[i * step : (i + 1) * step if i < pieces - 1 else len(data)]
        await asyncio.sleep(pause)


@pytest.mark.hostile
async def test_put_during_a_patch_never_corrupts_the_published_file(plain_tenant: Tenant) -> None:
    t = plain_tenant
    size = 32 << 20
    data = os.urandom(size)
    token = await _upload_token(t, "race.bin", size)
    url = f"{t.daemon.client_url}/upload?token={token}"
    async with aiohttp.ClientSession() as s:
        patch = asyncio.ensure_future(
            s.patch(url, data=_slow_body(data, 64, 0.02), headers={**OCTETS, "Upload-Offset": "0"})
        )
        await asyncio.sleep(0.8)  # the PATCH is streaming: several MiB are on disk already
        async with s.put(url, data=b"\0" * size, headers=TUS) as put:
            assert put.status == 409, await put.text()  # refused, and nothing truncated
        async with await patch as resp:
            assert resp.status == 204, await resp.text()
    assert (
        hashlib.sha256((t.mount / "race.bin").read_bytes()).digest()
        == hashlib.sha256(data).digest()
    )


@pytest.mark.hostile
async def test_a_write_cut_by_the_quota_stops_before_its_descriptor_closes(
    start_hostile,  # type: ignore[no-untyped-def]
) -> None:
    """An over-quota streamed PUT is refused mid-stream; the writer thread finishes first (no
    EBADF in the log, no "Task exception was never retrieved"), and nothing is left."""
    t = start_hostile()
    scope = t.vfid.rsplit("/", 1)[0]
    r = t.daemon.manager(
        "PATCH",
        "/quota-scope",
        {"volume": t.volume, "qsid": scope, "options": {"limit_bytes": 6 << 20}},
    )
    assert r.status == 204, r
    async with aiohttp.ClientSession() as s:
        for i in range(10):
            body = _slow_body(os.urandom(16 << 20), 64, 0)
            async with s.put(f"{t.files_url}/files/big-{i}.bin", data=body, headers=t.auth) as resp:
                assert resp.status == 413, await resp.text()
    log = t.daemon.log_text()
    assert "Bad file descriptor" not in log and "never retrieved" not in log, log[-3000:]
    assert not any(p.name.startswith("big-") for p in t.mount.iterdir())
    staging = t.mount.parents[3] / ".uploads"
    for _ in range(50):  # the last refused write's staging goes as its request ends
        if not any(staging.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert not list(staging.iterdir())


@pytest.mark.hostile
async def test_a_revoked_user_cannot_continue_an_upload(plain_tenant: Tenant) -> None:
    t = plain_tenant
    other = user_token(TOKEN_SECRET, "eve")
    grant = t.manager("POST", "/folder/acl/grant", {"principal": "user:eve", "permission": "rw"})
    assert grant.status == 200, grant
    meta = f"volume {_b64(t.volume)},vfid {_b64(t.vfid)},path {_b64('eve.bin')}"
    eve = {"Authorization": f"Bearer {other}"}
    async with aiohttp.ClientSession() as s:
        headers = {**TUS, **eve, "Upload-Length": "8", "Upload-Metadata": meta}
        async with s.post(f"{t.daemon.client_url}/upload", headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
        url = f"{t.daemon.client_url}{location}"
        async with s.patch(url, data=b"1234", headers={**OCTETS, **eve, "Upload-Offset": "0"}) as r:
            assert r.status == 204
        revoke = t.manager("POST", "/folder/acl/revoke", {"principal": "user:eve"})
        assert revoke.status == 200, revoke
        async with s.patch(url, data=b"5678", headers={**OCTETS, **eve, "Upload-Offset": "4"}) as r:
            assert r.status in (403, 404), await r.text()
        async with s.head(url, headers={**TUS, **eve}) as r:
            assert r.status in (403, 404)
    assert not (t.mount / "eve.bin").exists()


@pytest.mark.hostile
async def test_a_deferred_length_shorter_than_what_arrived_is_refused(plain_tenant: Tenant) -> None:
    t = plain_tenant
    meta = f"volume {_b64(t.volume)},vfid {_b64(t.vfid)},path {_b64('deferred.bin')}"
    async with aiohttp.ClientSession() as s:
        headers = {**TUS, **t.auth, "Upload-Defer-Length": "1", "Upload-Metadata": meta}
        async with s.post(f"{t.daemon.client_url}/upload", headers=headers) as resp:
            assert resp.status == 201
            url = f"{t.daemon.client_url}{resp.headers['Location']}"
        async with s.patch(
            url, data=b"x" * 100, headers={**OCTETS, **t.auth, "Upload-Offset": "0"}
        ) as r:
            assert r.status == 204
        headers = {**OCTETS, **t.auth, "Upload-Offset": "100", "Upload-Length": "50"}
        async with s.patch(url, data=b"", headers=headers) as r:
            assert r.status == 400, await r.text()
        assert not (t.mount / "deferred.bin").exists()
        headers["Upload-Length"] = "110"
        async with s.patch(url, data=b"y" * 10, headers=headers) as r:
            assert r.status == 204
    assert (t.mount / "deferred.bin").read_bytes() == b"x" * 100 + b"y" * 10


@pytest.mark.hostile
def test_a_client_dropping_a_put_half_way_is_no_server_error(plain_tenant: Tenant) -> None:
    t = plain_tenant
    path = f"{t.files_url}/files/dropped.bin".split(t.daemon.client_url, 1)[1]
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n"
        f"Content-Length: {4 << 20}\r\n\r\n"
    ).encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", t.daemon.client_port)) as sock:
            sock.sendall(head + os.urandom(1 << 20))
            time.sleep(0.2)
    time.sleep(0.5)
    log = t.daemon.log_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    assert "client went away" in log
    assert not (t.mount / "dropped.bin").exists()
