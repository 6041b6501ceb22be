"""Parts are signed with the digest the volume computed off the event loop (``signing.py``), on
the real S3 server: the store checks that digest against the body (a wrong one is refused, so
integrity is as before), and botocore does not hash the body again on the loop."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth

from contract.test_contract import new_vfolder
from storage_proxy.core.errors import StorageProxyError
from storage_proxy.core.paths import RelPath
from storage_proxy_s3 import S3Volume
from storage_proxy_s3.multipart import MultipartUpload, put_object

MiB = 1 << 20


class Hashed:
    """Counts the bodies botocore's own signer hashes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = S3SigV4Auth.payload

        def payload(auth: Any, request: Any) -> str:
            body = request.body
            size = len(body.getvalue()) if hasattr(body, "getvalue") else len(body or b"")
            self.sizes.append(size)
            return str(real(auth, request))

        monkeypatch.setattr(S3SigV4Auth, "payload", payload)


async def _upload(volume: S3Volume) -> MultipartUpload:
    vfid = await new_vfolder(volume)
    key = volume.file_key(vfid, RelPath.parse("part.bin"))
    return await MultipartUpload.create(volume.conn, key)


def _parts(raw_s3: Any, volume: S3Volume, upload: MultipartUpload) -> Any:
    bucket = volume.conn.bucket
    return raw_s3.list_parts(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)


async def test_a_part_with_its_digest_is_not_hashed_again(
    s3_volume: S3Volume, raw_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = Hashed(monkeypatch)
    upload = await _upload(s3_volume)
    data = os.urandom(5 * MiB)
    try:
        part = await upload.send(1, data, hashlib.sha256(data).digest())
        assert 5 * MiB not in hashed.sizes  # the signer used the digest it was given
        listed = raw_s3.list_parts(
            Bucket=s3_volume.conn.bucket, Key=upload.key, UploadId=upload.upload_id
        )
        assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 5 * MiB)]
        assert part.etag.strip('"') == hashlib.md5(data).hexdigest()
        other = os.urandom(5 * MiB)  # no digest given: computed off the loop, then signed
        await upload.send(2, other)
        assert 5 * MiB not in hashed.sizes
    finally:
        await upload.abort()


async def test_a_wrong_digest_is_refused_by_the_store(s3_volume: S3Volume, raw_s3: Any) -> None:
    """The signed digest is the one the store checks the body against: a body that does not
    match it (corrupted on the way, or a bug of ours) is never stored."""
    upload = await _upload(s3_volume)
    data = os.urandom(5 * MiB)
    try:
        with pytest.raises(StorageProxyError):
            await upload.send(1, data, hashlib.sha256(b"something else").digest())
        listed = raw_s3.list_parts(
            Bucket=s3_volume.conn.bucket, Key=upload.key, UploadId=upload.upload_id
        )
        assert listed.get("Parts", []) == []
    finally:
        await upload.abort()


async def test_parts_and_objects_go_out_as_their_bytes(s3_volume: S3Volume, raw_s3: Any) -> None:
    """aiohttp sends a BytesIO 64 KiB at a time after copying it whole; a known body is handed
    to it as the bytes it was made from (after signing), and the store keeps exactly those."""
    sent: list[tuple[str, type]] = []

    def spy(request: Any, **kwargs: Any) -> None:
        if request.method == "PUT":
            sent.append((request.url.split("?")[0].rsplit("/", 1)[-1], type(request.body)))

    s3_volume.conn.c.meta.events.register("before-send.s3", spy)
    upload = await _upload(s3_volume)
    data = os.urandom(5 * MiB)
    try:
        part = await upload.send(1, data, hashlib.sha256(data).digest())
        assert part.etag.strip('"') == hashlib.md5(data).hexdigest()
    finally:
        await upload.abort()
    key = s3_volume.file_key(await new_vfolder(s3_volume), RelPath.parse("small.bin"))
    body = os.urandom(300_000)
    await put_object(s3_volume.conn, key, body, (), {})
    assert raw_s3.get_object(Bucket=s3_volume.conn.bucket, Key=key)["Body"].read() == body
    bodies = [(name, kind) for name, kind in sent if name in ("part.bin", "small.bin")]
    assert bodies == [("part.bin", bytes), ("small.bin", bytes)], sent
