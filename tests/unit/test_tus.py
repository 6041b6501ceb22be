"""tus 1.0.0 uploads and whole-file PUTs on the client API (tuspy as the real client)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Daemon
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from storage_proxy.core.errors import Conflict, UploadOffsetMismatch
from storage_proxy.volumes.staging import LocalStaging

QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def vfolder(daemon: Daemon) -> Path:
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID)
    assert status in (204, 409)
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    return Path(mount["path"])


async def upload_token(daemon: Daemon, relpath: str, size: int) -> tuple[int, Any]:
    return await daemon.call(
        "POST", "/folder/file/upload", volume="vol1", vfid=VFID, relpath=relpath, size=size
    )


async def ok_token(daemon: Daemon, relpath: str, size: int) -> str:
    status, body = await upload_token(daemon, relpath, size)
    assert status == 200, body
    return str(body["token"])


def visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def head_offset(daemon: Daemon, token: str) -> int:
    resp = await daemon.client.head("/upload", params={"token": token}, headers=TUS)
    assert resp.status == 200
    return int(resp.headers["Upload-Offset"])


async def patch(daemon: Daemon, token: str, offset: int, data: bytes, **headers: str) -> Any:
    return await daemon.client.patch(
        "/upload",
        params={"token": token},
        data=data,
        headers={**PATCH_HEADERS, "Upload-Offset": str(offset), **headers},
    )


async def test_options_advertises_extensions(daemon: Daemon) -> None:
    resp = await daemon.client.options("/upload")
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(resp.headers["Tus-Extension"].split(","))
    assert {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    } <= extensions
    assert set(resp.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256", "md5"}
    assert int(resp.headers["Tus-Max-Size"]) == 100 * 1024**3


async def test_patch_in_chunks_appears_only_when_complete(daemon: Daemon) -> None:
    root = await vfolder(daemon)
    data = os.urandom(300_000)
    token = await ok_token(daemon, "up/x.bin", len(data))
    assert await head_offset(daemon, token) == 0
    resp = await patch(daemon, token, 0, data[:100_000])
    assert resp.status == 204 and resp.headers["Upload-Offset"] == "100000"
    assert "Upload-Expires" in resp.headers
    assert visible_files(root) == []  # nothing at the target until complete
    assert await head_offset(daemon, token) == 100_000
    resp = await patch(daemon, token, 100_000, data[100_000:])
    assert resp.status == 204 and resp.headers["Upload-Offset"] == str(len(data))
    assert (root / "up" / "x.bin").read_bytes() == data


async def test_offset_mismatch_is_409(daemon: Daemon) -> None:
    await vfolder(daemon)
    token = await ok_token(daemon, "a.bin", 10)
    await patch(daemon, token, 0, b"12345")
    resp = await patch(daemon, token, 0, b"12345")
    assert resp.status == 409
    assert (await resp.json())["code"] == "upload-offset-mismatch"
    assert resp.headers["Upload-Offset"] == "5"
    assert await head_offset(daemon, token) == 5


async def test_a_stale_offset_with_a_checksum_loses_nothing(daemon: Daemon) -> None:
    """A refused chunk is not "unverifiable data to discard": the staged bytes stay."""
    await vfolder(daemon)
    token = await ok_token(daemon, "a.bin", 10)
    await patch(daemon, token, 0, b"12345")
    digest = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    resp = await patch(daemon, token, 2, b"abc", **{"Upload-Checksum": f"sha1 {digest}"})
    assert resp.status == 409 and resp.headers["Upload-Offset"] == "5"
    assert await head_offset(daemon, token) == 5


async def test_staging_checks_the_offset_under_the_writer_lock(tmp_path: Path) -> None:
    """A writer that read the staged size before another's append finished is refused, not
    allowed to write over what the other one stored; two writers never hold one upload."""
    staging = LocalStaging(tmp_path / "staging")
    session = "ab" * 16
    await staging.prepare(session)
    async with staging.hold(session) as held:
        assert await staging.append(held, 0, _chunks(b"0123456789")) == 10
        with pytest.raises(Conflict):
            async with staging.hold(session):
                pass  # a second writer, in this process or another: refused while held
    async with staging.hold(session) as held:
        with pytest.raises(UploadOffsetMismatch) as e:
            await staging.append(held, 4, _chunks(b"XXXX"))
        assert e.value.extra["offset"] == 10
        assert staging.path(session).read_bytes() == b"0123456789"
        assert await staging.append(held, 10, _chunks(b"ab")) == 12


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_protocol_errors(daemon: Daemon) -> None:
    await vfolder(daemon)
    token = await ok_token(daemon, "a.bin", 10)
    resp = await daemon.client.patch(
        "/upload",
        params={"token": token},
        data=b"x",
        headers={"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert resp.status == 412 and resp.headers["Tus-Version"] == "1.0.0"
    resp = await daemon.client.patch(
        "/upload",
        params={"token": token},
        data=b"x",
        headers={**TUS, "Content-Type": "text/plain", "Upload-Offset": "0"},
    )
    assert resp.status == 415
    resp = await daemon.client.patch(
        "/upload", params={"token": token}, data=b"x", headers=PATCH_HEADERS
    )
    assert resp.status == 400
    resp = await patch(daemon, token, 0, b"x" * 11)  # more than declared
    assert (resp.status, (await resp.json())["code"]) == (400, "upload-exceeds-length")
    assert await head_offset(daemon, token) == 0  # the bad chunk was dropped


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_checksum_extension(daemon: Daemon, algorithm: str) -> None:
    root = await vfolder(daemon)
    token = await ok_token(daemon, "c.bin", 8)
    digest = base64.b64encode(hashlib.new(algorithm, b"abcd").digest()).decode()
    resp = await patch(daemon, token, 0, b"abcd", **{"Upload-Checksum": f"{algorithm} {digest}"})
    assert resp.status == 204
    wrong = base64.b64encode(hashlib.new(algorithm, b"XXXX").digest()).decode()
    resp = await patch(daemon, token, 4, b"efgh", **{"Upload-Checksum": f"{algorithm} {wrong}"})
    assert resp.status == 460
    assert (await resp.json())["code"] == "checksum-mismatch"
    assert await head_offset(daemon, token) == 4  # chunk discarded
    good = base64.b64encode(hashlib.new(algorithm, b"efgh").digest()).decode()
    resp = await patch(daemon, token, 4, b"efgh", **{"Upload-Checksum": f"{algorithm} {good}"})
    assert resp.status == 204
    assert (root / "c.bin").read_bytes() == b"abcdefgh"


async def test_unknown_checksum_algorithm_is_400(daemon: Daemon) -> None:
    await vfolder(daemon)
    token = await ok_token(daemon, "c.bin", 4)
    resp = await patch(daemon, token, 0, b"abcd", **{"Upload-Checksum": "crc32 AAAA"})
    assert resp.status == 400


async def test_termination_removes_staged_bytes(daemon: Daemon) -> None:
    root = await vfolder(daemon)
    token = await ok_token(daemon, "t.bin", 100)
    await patch(daemon, token, 0, b"x" * 50)
    resp = await daemon.client.delete("/upload", params={"token": token}, headers=TUS)
    assert resp.status == 204
    resp = await daemon.client.head("/upload", params={"token": token}, headers=TUS)
    assert resp.status == 404
    assert visible_files(root) == []
    assert list((daemon.ctx.volumes.get("vol1").mount_path / ".uploads").iterdir()) == []


async def test_expired_upload_is_gone_and_cleaned(daemon: Daemon) -> None:
    await vfolder(daemon)
    token = await ok_token(daemon, "e.bin", 100)
    await patch(daemon, token, 0, b"x" * 10)
    [session] = await daemon.ctx.metadata.list_uploads()
    session.expires_at = 0
    await daemon.ctx.metadata.delete_upload(session.id)
    await daemon.ctx.metadata.create_upload(session)
    resp = await daemon.client.head("/upload", params={"token": token}, headers=TUS)
    assert resp.status == 410
    assert await daemon.ctx.metadata.list_uploads() == []


async def test_upload_survives_restart(daemon: Daemon, tmp_path: Path, aiohttp_client: Any) -> None:
    from api_fixtures import make_config

    from storage_proxy.api.client import create_client_app
    from storage_proxy.context import build_root_context

    root = await vfolder(daemon)
    data = os.urandom(50_000)
    token = await ok_token(daemon, "r.bin", len(data))
    await patch(daemon, token, 0, data[:20_000])
    await daemon.ctx.close()  # the daemon goes away mid-upload
    ctx2 = await build_root_context(make_config(tmp_path))
    try:
        client2 = await aiohttp_client(create_client_app(ctx2.services))
        resp = await client2.head("/upload", params={"token": token}, headers=TUS)
        assert int(resp.headers["Upload-Offset"]) == 20_000
        resp = await client2.patch(
            "/upload",
            params={"token": token},
            data=data[20_000:],
            headers={**PATCH_HEADERS, "Upload-Offset": "20000"},
        )
        assert resp.status == 204
        assert (root / "r.bin").read_bytes() == data
    finally:
        await ctx2.close()
        daemon.ctx = ctx2  # the fixture closes it again: closing twice is harmless


async def test_put_whole_file(daemon: Daemon) -> None:
    root = await vfolder(daemon)
    token = await ok_token(daemon, "p/whole.bin", 1000)
    resp = await daemon.client.put("/upload", params={"token": token}, data=b"w" * 999)
    assert resp.status == 400  # declared 1000, sent 999: nothing stored
    assert visible_files(root) == []
    resp = await daemon.client.put("/upload", params={"token": token}, data=b"w" * 1000)
    assert resp.status == 201
    assert (root / "p" / "whole.bin").read_bytes() == b"w" * 1000


async def test_quota_refuses_upload_up_front_and_reserves(daemon: Daemon) -> None:
    await vfolder(daemon)
    status, _ = await daemon.call(
        "PATCH", "/quota-scope", volume="vol1", qsid=QSID, options={"limit_bytes": 10_000}
    )
    assert status == 204
    status, body = await upload_token(daemon, "big.bin", 20_000)
    assert (status, body["code"]) == (413, "quota-exceeded")
    status, _ = await upload_token(daemon, "a.bin", 6_000)
    assert status == 200
    # The first upload's 6,000 bytes are reserved: a second 6,000 cannot start alongside it.
    status, body = await upload_token(daemon, "b.bin", 6_000)
    assert status == 413
    status, _ = await upload_token(daemon, "c.bin", 4_000)
    assert status == 200


async def test_per_vfolder_quota(daemon: Daemon) -> None:
    await vfolder(daemon)
    status, _ = await daemon.call(
        "PATCH", "/folder/quota", volume="vol1", vfid=VFID, limit_bytes=1_000
    )
    assert status == 204
    status, body = await daemon.call("GET", "/folder/quota", volume="vol1", vfid=VFID)
    assert body == {"used_bytes": 0, "limit_bytes": 1_000}
    status, body = await upload_token(daemon, "a.bin", 1_001)
    assert (status, body["code"]) == (413, "quota-exceeded")
    token = await ok_token(daemon, "a.bin", 1_000)
    resp = await patch(daemon, token, 0, b"z" * 1_000)
    assert resp.status == 204


async def test_tuspy_uploads_interrupted_and_resumes(daemon: Daemon, tmp_path: Path) -> None:
    root = await vfolder(daemon)
    data = os.urandom(3 * 256 * 1024 + 123)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    token = await ok_token(daemon, "tuspy/out.bin", len(data))
    url = str(daemon.client.make_url("/upload")) + f"?token={token}"
    base = str(daemon.client.make_url("/upload"))

    def first_attempt() -> int:
        tc = tus_client.TusClient(base)
        uploader = tc.uploader(str(src), url=url, chunk_size=256 * 1024)
        uploader.upload_chunk()
        uploader.upload_chunk()  # then the client "dies"
        return int(uploader.offset)

    sent = await asyncio.to_thread(first_attempt)
    assert sent == 512 * 1024
    assert visible_files(root) == []

    def resume() -> None:
        tc = tus_client.TusClient(base)
        uploader = tc.uploader(str(src), url=url, chunk_size=256 * 1024)
        assert uploader.offset == 512 * 1024  # learnt from HEAD
        uploader.upload()

    await asyncio.to_thread(resume)
    assert (root / "tuspy" / "out.bin").read_bytes() == data


async def test_tuspy_creation_with_user_token(daemon: Daemon, tmp_path: Path) -> None:
    root = await vfolder(daemon)
    await daemon.call(
        "PUT", "/folder/acl", volume="vol1", vfid=VFID, owner="alice", kind="user", entries=[]
    )
    alice = daemon.ctx.tokens.issue_user("alice", [], daemon.ctx.tokens.session_lifetime)
    bob = daemon.ctx.tokens.issue_user("bob", [], daemon.ctx.tokens.session_lifetime)
    data = os.urandom(100_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    base = str(daemon.client.make_url("/upload"))
    meta = {"volume": "vol1", "vfid": VFID, "path": "created/by-alice.bin"}

    def upload_as(token: str) -> None:
        tc = tus_client.TusClient(base, headers={"Authorization": f"Bearer {token}"})
        tc.uploader(str(src), metadata=meta, chunk_size=40_000).upload()

    with pytest.raises(TusCommunicationError):
        await asyncio.to_thread(upload_as, bob)  # bob cannot see the vfolder
    await asyncio.to_thread(upload_as, alice)
    assert (root / "created" / "by-alice.bin").read_bytes() == data


async def test_expire_sweeps_abandoned_sessions(daemon: Daemon) -> None:
    await vfolder(daemon)
    keep = await ok_token(daemon, "keep.bin", 10)
    await ok_token(daemon, "abandoned.bin", 10)
    sessions = await daemon.ctx.metadata.list_uploads()
    abandoned = next(s for s in sessions if s.relpath == "abandoned.bin")
    assert await daemon.ctx.uploads.expire(now=abandoned.expires_at + 1) == 2
    assert await daemon.ctx.metadata.list_uploads() == []
    staging = daemon.ctx.volumes.get("vol1").mount_path / ".uploads"
    assert list(staging.iterdir()) == []
    resp = await daemon.client.head("/upload", params={"token": keep}, headers=TUS)
    assert resp.status == 404


async def test_a_second_writer_on_one_upload_is_refused(daemon: Daemon) -> None:
    """The staged file's lock keeps two writers (worker processes, nodes) from interleaving."""
    import fcntl

    await vfolder(daemon)
    token = await ok_token(daemon, "locked.bin", 10)
    [session] = await daemon.ctx.metadata.list_uploads()
    staged = daemon.ctx.volumes.get("vol1").mount_path / ".uploads" / session.id
    with open(staged, "rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # as another process appending right now
        resp = await patch(daemon, token, 0, b"12345")
        assert resp.status == 409
    resp = await patch(daemon, token, 0, b"12345")
    assert resp.status == 204
