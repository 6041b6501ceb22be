"""Resumable uploads on an s3 volume send their complete parts while the rest still arrives
(``early.py``), on the real S3 server: what is sent early is only what can no longer change,
another process sharing the staging directory carries on, and every way out (publish, discard,
a refused target, changed settings) leaves no multipart upload behind."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contract.test_contract import new_vfolder, read, rp
from storage_proxy.core.errors import FileExists, QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID
from storage_proxy.volumes.abc import AppendOptions, UploadTarget, VolumeDeps
from storage_proxy_s3 import S3Volume, prehash

MiB = 1 << 20


async def chunks(
    *parts: bytes, fail_after: int | None = None, refuse: bool = False
) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        if fail_after is not None and i == fail_after:
            if refuse:
                raise QuotaExceeded("refused midway")  # a refusal: the chunk is cut back
            raise ConnectionResetError("the client went away")
        yield part


async def new_session(
    volume: S3Volume, deps: VolumeDeps, vfid: VFolderID, relpath: str, **meta: Any
) -> str:
    session_id = uuid.uuid4().hex
    target = UploadTarget(
        vfid,
        RelPath.parse(relpath),
        meta.get("content_type"),
        checksums=meta.get("checksums", False),
    )
    await volume.upload_prepare(session_id, target)
    return session_id


def pending(raw_s3: Any, volume: S3Volume) -> list[Any]:
    return list(raw_s3.list_multipart_uploads(Bucket=volume.conn.bucket).get("Uploads", []))


def parts_sent(raw_s3: Any, volume: S3Volume) -> list[tuple[int, int]]:
    (upload,) = pending(raw_s3, volume)
    listed = raw_s3.list_parts(
        Bucket=volume.conn.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
    )
    return [(p["PartNumber"], p["Size"]) for p in listed.get("Parts", [])]


def sidecars(volume: S3Volume) -> list[str]:
    """The early-part files beside staged uploads (not a session's ``.target`` record)."""
    names = (p.name for p in volume.staging.directory.iterdir())
    return sorted(n for n in names if "." in n and not n.endswith(".target"))


async def append(volume: S3Volume, sid: str, offset: int, stream: AsyncIterator[bytes]) -> int:
    """One PATCH's worth: the writer's hold, then the append."""
    async with volume.upload_hold(sid) as held:
        return await volume.upload_append(held, offset, stream)


async def publish(volume: S3Volume, sid: str, vfid: VFolderID, path: str, **kw: Any) -> None:
    async with volume.upload_hold(sid) as held:
        await volume.upload_publish(held, vfid, rp(path), **kw)


async def append_all(volume: S3Volume, sid: str, data: bytes, piece: int) -> None:
    for offset in range(0, len(data), piece):
        end = await append(volume, sid, offset, chunks(data[offset : offset + piece]))
        assert end == min(offset + piece, len(data))


async def test_parts_go_up_before_the_upload_completes(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "up/early.bin")
    data = os.urandom(23 * MiB)  # parts of 5 MiB: 4 whole ones, and 3 MiB
    await append_all(s3_volume, sid, data[: 20 * MiB], 2 * MiB)
    await s3_volume.early._settle(sid)
    # accepted so far: PATCHes up to 20 MiB; the last one starts at 18 MiB, so 3 parts are final
    assert parts_sent(raw_s3, s3_volume) == [(1, 5 * MiB), (2, 5 * MiB), (3, 5 * MiB)]
    assert [e async for e in s3_volume.scandir(vfid, rp("."))] == []  # nothing visible yet
    assert sidecars(s3_volume) == [f"{sid}.s3lock", f"{sid}.s3parts"]

    end = await append(s3_volume, sid, 20 * MiB, chunks(data[20 * MiB :]))
    assert end == len(data)
    await publish(s3_volume, sid, vfid, "up/early.bin", checksums=True)
    assert await read(s3_volume, vfid, "up/early.bin") == data
    meta = await s3_volume.get_file_meta(vfid, rp("up/early.bin"))
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.md5 == hashlib.md5(data).hexdigest()
    assert pending(raw_s3, s3_volume) == [] and sidecars(s3_volume) == []
    assert not s3_volume.staging.path(sid).exists()


async def test_bytes_of_a_refused_chunk_are_never_sent(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    """A chunk refused midway is cut back to its start under the writer's hold; a chunk that
    breaks off stays staged (the client resumes after it); nothing above a chunk's start may
    have gone to S3 before the next chunk was accepted."""
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "cut.bin")
    first, lost, second = os.urandom(6 * MiB), b"L" * (4 * MiB), os.urandom(6 * MiB)
    await append(s3_volume, sid, 0, chunks(first))
    with pytest.raises(QuotaExceeded):
        await append(s3_volume, sid, 6 * MiB, chunks(lost, b"more", fail_after=1, refuse=True))
    assert await s3_volume.upload_size(sid) == 6 * MiB  # the refused chunk is gone...
    await s3_volume.early._settle(sid)
    assert parts_sent(raw_s3, s3_volume) == [(1, 5 * MiB)]  # ...and nothing of it was sent
    with pytest.raises(ConnectionResetError):
        await append(s3_volume, sid, 6 * MiB, chunks(second[:MiB], b"x", fail_after=1))
    assert await s3_volume.upload_size(sid) == 7 * MiB  # a broken chunk keeps what arrived
    await append(s3_volume, sid, 7 * MiB, chunks(second[MiB:]))
    await publish(s3_volume, sid, vfid, "cut.bin")
    assert await read(s3_volume, vfid, "cut.bin") == first + second
    assert pending(raw_s3, s3_volume) == []


async def test_another_process_carries_on(
    make_s3: Any, deps: VolumeDeps, raw_s3: Any, tmp_path: Path
) -> None:
    """Two volumes on one bucket and one staging directory: two workers, or a restart."""
    staging = str(tmp_path / "shared-staging")
    async with make_s3(**{"staging-dir": staging}) as one:
        bucket = one.conn.bucket
        vfid = await new_vfolder(one)
        sid = await new_session(one, deps, vfid, "both.bin")
        data = os.urandom(17 * MiB)
        await append_all(one, sid, data[: 12 * MiB], 4 * MiB)
        await one.early._settle(sid)
        assert parts_sent(raw_s3, one) == [(1, 5 * MiB)]
        async with make_s3(bucket=bucket, **{"staging-dir": staging}) as two:
            await append(two, sid, 12 * MiB, chunks(data[12 * MiB :]))
            await publish(two, sid, vfid, "both.bin")
            assert await read(two, vfid, "both.bin") == data
            assert pending(raw_s3, two) == [] and sidecars(two) == []


async def test_discard_aborts_the_early_upload(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "gone.bin")
    await append_all(s3_volume, sid, os.urandom(12 * MiB), 6 * MiB)
    await s3_volume.early._settle(sid)
    assert len(pending(raw_s3, s3_volume)) == 1
    await s3_volume.upload_discard(sid)
    assert pending(raw_s3, s3_volume) == [] and sidecars(s3_volume) == []
    assert not s3_volume.staging.path(sid).exists()


async def test_a_refused_target_aborts_the_early_upload(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    vfid = await new_vfolder(s3_volume)
    await s3_volume.write(vfid, rp("taken.bin"), chunks(b"first"))
    sid = await new_session(s3_volume, deps, vfid, "taken.bin")
    await append_all(s3_volume, sid, os.urandom(12 * MiB), 6 * MiB)
    with pytest.raises(FileExists):
        await publish(s3_volume, sid, vfid, "taken.bin", overwrite=False)
    assert await read(s3_volume, vfid, "taken.bin") == b"first"
    assert pending(raw_s3, s3_volume) == [] and sidecars(s3_volume) == []


async def test_changed_content_type_publishes_the_staged_file_anew(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "t.csv", content_type="text/plain")
    data = os.urandom(12 * MiB)
    await append_all(s3_volume, sid, data, 6 * MiB)
    await publish(s3_volume, sid, vfid, "t.csv", content_type="text/csv")
    assert await read(s3_volume, vfid, "t.csv") == data
    key = s3_volume.file_key(vfid, rp("t.csv"))
    head = raw_s3.head_object(Bucket=s3_volume.conn.bucket, Key=key)
    assert head["ContentType"] == "text/csv"
    assert pending(raw_s3, s3_volume) == [] and sidecars(s3_volume) == []


async def test_partial_uploads_stay_staged_and_are_joined_before_publishing(
    s3_volume: S3Volume, deps: VolumeDeps, raw_s3: Any
) -> None:
    """tus concatenation on S3: a partial upload's parts are not sent early (it is never
    published itself); the joined file goes up as one upload when the final one is published."""
    vfid = await new_vfolder(s3_volume)
    datas = [os.urandom(12 * MiB), os.urandom(7 * MiB + 5)]
    parts = []
    for data in datas:
        sid = uuid.uuid4().hex
        await s3_volume.upload_prepare(sid, UploadTarget(vfid, rp("joined.bin"), partial=True))
        await append_all(s3_volume, sid, data, 4 * MiB)
        await s3_volume.early._settle(sid)
        parts.append(sid)
    assert pending(raw_s3, s3_volume) == []
    final = await new_session(s3_volume, deps, vfid, "joined.bin")
    async with (
        s3_volume.upload_hold(parts[0]) as first,
        s3_volume.upload_hold(parts[1]) as second,
        s3_volume.upload_hold(final) as held,
    ):
        assert await s3_volume.upload_concat(held, [first, second]) == sum(map(len, datas))
        await s3_volume.upload_publish(held, vfid, rp("joined.bin"), checksums=True)
    for sid in parts:
        await s3_volume.upload_discard(sid)
    joined = b"".join(datas)
    assert await read(s3_volume, vfid, "joined.bin") == joined
    meta = await s3_volume.get_file_meta(vfid, rp("joined.bin"))
    assert meta.sha256 == hashlib.sha256(joined).hexdigest()
    assert pending(raw_s3, s3_volume) == [] and sidecars(s3_volume) == []
    assert list(s3_volume.staging.directory.iterdir()) == []


async def test_checksums_are_hashed_while_the_upload_arrives(
    s3_volume: S3Volume, deps: VolumeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that records sha256 and md5 has its final bytes hashed as they arrive:
    publishing hashes only what came after (it is right, and it read only the tail)."""
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "hashed.bin", checksums=True)
    data = os.urandom(23 * MiB)
    await append_all(s3_volume, sid, data[: 20 * MiB], 2 * MiB)
    await s3_volume.early._settle(sid)
    running = s3_volume.early.hashes._by_session[sid]
    await running.settle()
    assert running.done == 18 * MiB  # the last PATCH's own bytes are not final yet
    seen: list[tuple[int, int]] = []
    real = prehash.hash_range

    def spy(path: Path, start: int, end: int, hasher: Any) -> None:
        seen.append((start, end))
        real(path, start, end, hasher)

    monkeypatch.setattr(prehash, "hash_range", spy)
    await append(s3_volume, sid, 20 * MiB, chunks(data[20 * MiB :]))
    await publish(s3_volume, sid, vfid, "hashed.bin", checksums=True)
    assert seen and min(start for start, _ in seen) >= 18 * MiB
    meta = await s3_volume.get_file_meta(vfid, rp("hashed.bin"))
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.md5 == hashlib.md5(data).hexdigest()
    assert sid not in s3_volume.early.hashes._by_session


async def test_a_restarted_upload_is_hashed_from_its_new_bytes(
    s3_volume: S3Volume, deps: VolumeDeps
) -> None:
    """A whole-body PUT replaces what was staged (and hashed): the recorded checksums are those
    of the bytes published, never of bytes that were replaced."""
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "again.bin", checksums=True)
    await append_all(s3_volume, sid, os.urandom(16 * MiB), 4 * MiB)
    await s3_volume.early._settle(sid)
    await s3_volume.early.hashes._by_session[sid].settle()
    data = os.urandom(16 * MiB)  # the whole body again, then published at once
    async with s3_volume.upload_hold(sid) as held:
        await s3_volume.upload_append(held, 0, chunks(data), AppendOptions(replace=True))
    await publish(s3_volume, sid, vfid, "again.bin", checksums=True)
    assert await read(s3_volume, vfid, "again.bin") == data
    meta = await s3_volume.get_file_meta(vfid, rp("again.bin"))
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.md5 == hashlib.md5(data).hexdigest()


async def test_sessions_without_checksums_are_not_hashed(
    s3_volume: S3Volume, deps: VolumeDeps
) -> None:
    vfid = await new_vfolder(s3_volume)
    sid = await new_session(s3_volume, deps, vfid, "plain.bin")
    await append_all(s3_volume, sid, os.urandom(16 * MiB), 4 * MiB)
    await s3_volume.early._settle(sid)
    assert sid not in s3_volume.early.hashes._by_session


async def test_a_hash_of_replaced_bytes_is_never_used_by_another_process(
    make_s3: Any, deps: VolumeDeps, tmp_path: Path
) -> None:
    """Worker one hashed a session's first bytes; worker two restarted it with a whole-body PUT
    and sent new parts early; one publishes: its running hash is of another early upload (the
    replaced one) and is not used."""
    staging = str(tmp_path / "shared-staging")
    async with make_s3(**{"staging-dir": staging}) as one:
        vfid = await new_vfolder(one)
        sid = await new_session(one, deps, vfid, "twice.bin", checksums=True)
        await append_all(one, sid, os.urandom(16 * MiB), 4 * MiB)
        await one.early._settle(sid)
        await one.early.hashes._by_session[sid].settle()
        async with make_s3(bucket=one.conn.bucket, **{"staging-dir": staging}) as two:
            data = os.urandom(20 * MiB)
            async with two.upload_hold(sid) as held:
                replace = AppendOptions(replace=True)
                await two.upload_append(held, 0, chunks(data[: 16 * MiB]), replace)
            await append(two, sid, 16 * MiB, chunks(data[16 * MiB :]))
            await two.early._settle(sid)
        await publish(one, sid, vfid, "twice.bin", checksums=True)
        assert await read(one, vfid, "twice.bin") == data
        meta = await one.get_file_meta(vfid, rp("twice.bin"))
        assert meta.sha256 == hashlib.sha256(data).hexdigest()
        assert meta.md5 == hashlib.md5(data).hexdigest()
