"""The s3 backend beyond the shared contract: multipart paths, aborts, paging, start-up errors,
credentials kept out of logs, and the daemon's tus upload and ranged download on an s3 volume."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_fixtures import Daemon
from s3_server import S3Endpoint

from contract.backend_s3 import s3_options
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import BackendUnavailable, QuotaExceeded
from storage_proxy.core.types import QuotaConfig, VFolderID
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy_s3 import S3Volume

MiB = 1 << 20


def pending_uploads(raw_s3: Any, volume: S3Volume) -> list[Any]:
    return list(raw_s3.list_multipart_uploads(Bucket=volume.conn.bucket).get("Uploads", []))


async def test_failed_write_aborts_its_multipart_upload(s3_volume: S3Volume, raw_s3: Any) -> None:
    vfid = await new_vfolder(s3_volume)

    async def breaks() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"z" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await s3_volume.write(vfid, rp("half.bin"), breaks())
    assert pending_uploads(raw_s3, s3_volume) == []
    assert [e async for e in s3_volume.scandir(vfid, rp("."))] == []


async def test_quota_cut_aborts_multipart_upload(s3_volume: S3Volume, raw_s3: Any) -> None:
    vfid = await new_vfolder(s3_volume)
    await s3_volume.quota_model.update_quota_scope(vfid.quota_scope_id, QuotaConfig(8 * MiB))
    with pytest.raises(QuotaExceeded):
        await s3_volume.write(vfid, rp("q.bin"), body(*[b"q" * MiB] * 12))
    assert pending_uploads(raw_s3, s3_volume) == []
    assert [e async for e in s3_volume.scandir(vfid, rp("."))] == []


async def test_clone_uses_multipart_copy_above_threshold(make_s3: Any) -> None:
    async with make_s3(**{"multipart-copy-threshold": "5Mi"}) as volume:
        src = await new_vfolder(volume)
        data = os.urandom(11 * MiB)
        await volume.write(src, rp("d/large.bin"), body(data))
        await volume.write(src, rp("small.txt"), body(b"small"))
        await volume.mkdir(src, rp("empty"))
        dst = VFolderID(src.quota_scope_id, uuid.uuid4())
        await volume.clone_vfolder(src, dst)
        assert await read(volume, dst, "d/large.bin") == data
        names = sorted([e.path async for e in volume.scandir(dst, rp("."), recursive=True)])
        assert names == ["d", "d/large.bin", "empty", "small.txt"]
        usage = await volume.get_usage(dst)
        assert (usage.file_count, usage.used_bytes) == (2, 11 * MiB + 5)


async def test_listing_pages_through_many_awkward_keys(s3_volume: S3Volume, raw_s3: Any) -> None:
    """1,050 keys: two pages.  Each holds ``%41``, so a ListObjects v1 marker that the server
    sends undecoded (RGW) and the client decodes (boto3) would skip half a page; ListObjectsV2's
    continuation token pages correctly."""
    vfid = await new_vfolder(s3_volume)
    prefix = s3_volume.file_key(vfid, rp("many"))
    names = [f"p%41 {i:05}=ü" for i in range(1050)]

    def put_many() -> None:
        for name in names:
            raw_s3.put_object(Bucket=s3_volume.conn.bucket, Key=f"{prefix}/{name}", Body=b"k")

    await asyncio.to_thread(put_many)
    entries = [e async for e in s3_volume.scandir(vfid, rp("many"), limit=None)]
    assert [e.name for e in entries] == names
    assert (await s3_volume.get_usage(vfid)).file_count == 1050
    await s3_volume.delete_vfolder(vfid)  # deleting pages through them too
    left = raw_s3.list_objects_v2(Bucket=s3_volume.conn.bucket, Prefix=prefix)
    assert left.get("KeyCount", 0) == 0


AWKWARD = ["100%", "a%41b", "sp ace", "k=v", "ünï cödé", "a+b", "x%2Fy", "~q?#&"]


async def test_names_with_awkward_characters_round_trip(s3_volume: S3Volume) -> None:
    vfid = await new_vfolder(s3_volume)
    for i, name in enumerate(AWKWARD):
        await s3_volume.write(vfid, rp(f"d=1/{name}"), body(f"{i}".encode()))
    listed = [e.name async for e in s3_volume.scandir(vfid, rp("d=1"))]
    assert sorted(listed) == sorted(AWKWARD)
    for i, name in enumerate(AWKWARD):
        assert await read(s3_volume, vfid, f"d=1/{name}") == f"{i}".encode()
        assert (await s3_volume.stat(vfid, rp(f"d=1/{name}"))).stat.size == len(f"{i}")
    await s3_volume.move_file(vfid, rp("d=1"), rp("e f%20"))
    moved = [e.path async for e in s3_volume.scandir(vfid, rp("."), recursive=True)]
    assert sorted(moved) == sorted(["e f%20", *(f"e f%20/{n}" for n in AWKWARD)])
    await s3_volume.delete_files(vfid, [rp(f"e f%20/{AWKWARD[0]}")])
    await s3_volume.delete_files(vfid, [rp("e f%20")], recursive=True)
    assert [e async for e in s3_volume.scandir(vfid, rp("."))] == []


async def test_missing_bucket_is_a_clear_startup_error(
    deps: VolumeDeps, tmp_path: Any, s3: S3Endpoint
) -> None:
    opts = s3_options(s3, **{"create-bucket": False})
    volume = S3Volume("s3", tmp_path / "s3", options=opts, deps=deps)
    with pytest.raises(BackendUnavailable, match="create-bucket"):
        await volume.init()


async def test_credentials_never_reach_the_logs(
    make_s3: Any, s3: S3Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_s3() as volume:
        vfid = await new_vfolder(volume)
        await volume.write(vfid, rp("f"), body(b"data"))
        logging.getLogger("test").info("options: %r", volume.options)
    assert caplog.records
    assert s3.secret_key not in caplog.text
    assert s3.secret_key not in repr(volume.options)


async def test_tus_upload_and_ranged_download_through_the_daemon(start_daemon: Any) -> None:
    async with start_daemon("s3vol") as daemon:
        d: Daemon = daemon
        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        status, _ = await d.call("POST", "/folder/create", volume="s3vol", vfid=vfid)
        assert status == 204
        data = os.urandom(6 * MiB + 7)
        status, tok = await d.call(
            "POST",
            "/folder/file/upload",
            volume="s3vol",
            vfid=vfid,
            relpath="up/x.bin",
            size=len(data),
        )
        assert status == 200, tok
        resp = await d.client.put(f"/upload?token={tok['token']}", data=data)
        assert resp.status == 201, await resp.text()
        status, tok = await d.call(
            "POST", "/folder/file/download", volume="s3vol", vfid=vfid, relpath="up/x.bin"
        )
        resp = await d.client.get(
            f"/download?token={tok['token']}", headers={"Range": "bytes=100-199"}
        )
        assert resp.status == 206 and await resp.read() == data[100:200]
        resp = await d.client.get(f"/download?token={tok['token']}")
        assert resp.status == 200 and await resp.read() == data
        status, usage = await d.call("GET", "/folder/usage", volume="s3vol", vfid=vfid)
        assert usage == {"file_count": 1, "used_bytes": len(data)}
