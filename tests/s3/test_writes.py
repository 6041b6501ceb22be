"""Writes to an s3 volume on a real S3 server: multipart objects keep their checksums (RGW 16.2
answers CompleteMultipartUpload with an empty ETag), parts go up in parallel within the bound,
and ``x-amz-checksum-sha256`` is sent only to an endpoint that verifies it, and its verdict kept."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiobotocore.awsrequest import AioAWSResponse
from s3_server import S3Endpoint

from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import BackendUnavailable
from storage_proxy.volumes.abc import WriteOptions
from storage_proxy_s3 import S3Volume
from storage_proxy_s3.checksums import endpoint_verifies_sha256, sha256_b64
from storage_proxy_s3.multipart import Part, multipart_etag

MiB = 1 << 20


class Requests:
    """Every request the volume's S3 client sends: (operation, headers)."""

    def __init__(self, volume: S3Volume) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        volume.conn.c.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, event_name: str, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        self.seen.append((event_name.rsplit(".", 1)[-1], headers))

    def of(self, operation: str) -> list[dict[str, str]]:
        return [h for op, h in self.seen if op == operation]


def pending_uploads(raw_s3: Any, volume: S3Volume) -> list[Any]:
    return list(raw_s3.list_multipart_uploads(Bucket=volume.conn.bucket).get("Uploads", []))


async def test_multipart_object_keeps_its_checksums(s3_volume: S3Volume, raw_s3: Any) -> None:
    """Finding 1: on RGW 16.2 the completion ETag is empty; the sha256 must survive anyway."""
    vfid = await new_vfolder(s3_volume)
    data = os.urandom(12 * MiB + 123)
    chunks = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    meta = await s3_volume.write(vfid, rp("big.bin"), body(*chunks), WriteOptions(checksums=True))
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.md5 == hashlib.md5(data).hexdigest()
    head = raw_s3.head_object(
        Bucket=s3_volume.conn.bucket, Key=s3_volume.file_key(vfid, rp("big.bin"))
    )
    assert head["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + the rest
    again = await s3_volume.get_file_meta(vfid, rp("big.bin"))  # a fresh HEAD, same answer
    assert (again.sha256, again.md5, again.size) == (meta.sha256, meta.md5, len(data))
    assert await read(s3_volume, vfid, "big.bin") == data
    assert (
        await read(s3_volume, vfid, "big.bin", offset=5 * MiB - 10, length=20)
        == data[5 * MiB - 10 : 5 * MiB + 10]
    )
    assert pending_uploads(raw_s3, s3_volume) == []


async def test_overwritten_object_loses_its_checksums(s3_volume: S3Volume, raw_s3: Any) -> None:
    """The stored sha256 is trusted only while the object is the one the proxy wrote."""
    vfid = await new_vfolder(s3_volume)
    data = os.urandom(6 * MiB)
    await s3_volume.write(vfid, rp("f.bin"), body(data), WriteOptions(checksums=True))
    key = s3_volume.file_key(vfid, rp("f.bin"))
    other = io.BytesIO(os.urandom(6 * MiB))
    raw_s3.upload_fileobj(other, s3_volume.conn.bucket, key)  # behind the proxy's back
    meta = await s3_volume.get_file_meta(vfid, rp("f.bin"))
    assert meta.sha256 is None


def test_multipart_etag_is_s3s_rule() -> None:
    md5s = [hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()]
    parts = [Part(2, f'"{md5s[1]}"'), Part(1, f'"{md5s[0]}"')]
    whole = hashlib.md5(bytes.fromhex(md5s[0]) + bytes.fromhex(md5s[1])).hexdigest()
    assert multipart_etag(parts) == f'"{whole}-2"'
    assert multipart_etag([Part(1, '"not-an-md5"')]) is None


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_parts_go_up_in_parallel_within_the_bound(
    make_s3: Any, raw_s3: Any, concurrency: int
) -> None:
    async with make_s3(**{"upload-concurrency": concurrency}) as volume:
        vfid = await new_vfolder(volume)
        sending = peak = 0
        upload_part = volume.conn.c.upload_part

        async def counted(**kw: Any) -> Any:
            nonlocal sending, peak
            sending += 1
            peak = max(peak, sending)
            try:
                return await upload_part(**kw)
            finally:
                sending -= 1

        volume.conn.c.upload_part = counted
        data = os.urandom(8 * 5 * MiB)
        meta = await volume.write(vfid, rp("p.bin"), body(data), WriteOptions(checksums=True))
        assert peak == concurrency
        assert meta.sha256 == hashlib.sha256(data).hexdigest()
        assert await read(volume, vfid, "p.bin") == data
        assert pending_uploads(raw_s3, volume) == []


async def test_checksums_follow_what_the_endpoint_verifies(
    s3_volume: S3Volume, s3: S3Endpoint
) -> None:
    """The start-up probe's answer, checked against the endpoint directly; without verification
    no checksum is sent and the payload stays signed (plain HTTP)."""
    client = s3.client()
    bucket = s3_volume.conn.bucket
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    try:
        client.put_object(Bucket=bucket, Key="oracle", Body=b"x", ChecksumSHA256=wrong)
        verifies = False
    except client.exceptions.ClientError:
        verifies = True
    client.delete_object(Bucket=bucket, Key="oracle")
    assert s3_volume.conn.sha256 is verifies
    if s3.kind == "rgw":
        assert verifies is False  # Ceph RGW 16.2 ignores x-amz-checksum-sha256
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])] == []

    vfid = await new_vfolder(s3_volume)
    seen = Requests(s3_volume)
    data = os.urandom(11 * MiB)
    await s3_volume.write(vfid, rp("c.bin"), body(data))
    await s3_volume.write(vfid, rp("small.bin"), body(b"small"))  # hashed on the loop: small
    sent = seen.of("UploadPart") + seen.of("PutObject")
    assert len(sent) == 4  # three parts and one small object
    for headers in sent:
        assert ("x-amz-checksum-sha256" in headers) is verifies
        if not verifies and s3.url.startswith("http:"):
            assert len(headers["x-amz-content-sha256"]) == 64  # the body's sha256, signed...
    parts = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :], b"small"]
    if s3.url.startswith("http:"):  # ...and the right one (the server checks it, too)
        expected = {hashlib.sha256(p).hexdigest() for p in parts}
        assert {h["x-amz-content-sha256"] for h in sent} == expected
    assert await read(s3_volume, vfid, "c.bin") == data


async def test_checksums_sent_with_every_part_when_enabled(make_s3: Any, raw_s3: Any) -> None:
    async with make_s3(**{"checksum-sha256": True}) as volume:
        vfid = await new_vfolder(volume)
        seen = Requests(volume)
        data = os.urandom(11 * MiB)
        await volume.write(vfid, rp("c.bin"), body(data), WriteOptions(checksums=True))
        await volume.write(vfid, rp("s.bin"), body(b"small"))
        (create,) = seen.of("CreateMultipartUpload")
        assert create["x-amz-checksum-algorithm"] == "SHA256"
        parts = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
        expected = {base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts}
        assert {h["x-amz-checksum-sha256"] for h in seen.of("UploadPart")} == expected
        (put,) = seen.of("PutObject")
        assert (
            put["x-amz-checksum-sha256"]
            == base64.b64encode(hashlib.sha256(b"small").digest()).decode()
        )
        assert await read(volume, vfid, "c.bin") == data
        assert pending_uploads(raw_s3, volume) == []


async def test_a_part_stored_with_another_checksum_fails_the_write(
    make_s3: Any, raw_s3: Any
) -> None:
    """An endpoint that echoes another sha256 than was sent stored other bytes: the write fails
    and its multipart upload is aborted.  (No real server can be made to corrupt a part on
    purpose, so the echo is altered on its way into the client.)"""
    async with make_s3(**{"checksum-sha256": True}) as volume:

        def corrupt(parsed: dict[str, Any], **_: Any) -> None:
            if parsed.get("ETag"):
                parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

        volume.conn.c.meta.events.register("after-call.s3.UploadPart", corrupt)
        vfid = await new_vfolder(volume)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(11):
                yield os.urandom(MiB)

        with pytest.raises(BackendUnavailable, match="sha256"):
            await volume.write(vfid, rp("x.bin"), chunks())
        assert pending_uploads(raw_s3, volume) == []
        assert [e async for e in volume.scandir(vfid, rp("."))] == []


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data


def verifying_endpoint(volume: S3Volume, corrupt_parts: frozenset[int] = frozenset()) -> list[str]:
    """Make the session's S3 server look like one that verifies ``x-amz-checksum-sha256``.

    No S3 server this machine can run does (Ceph RGW 16.2 and moto both store a body under a
    wrong checksum), so the one answer such a server adds, 400 BadDigest, is given here before a
    request with a wrong checksum leaves the client; every other request goes to RGW as usual.
    A part in ``corrupt_parts`` is treated as damaged on the way.  Returns the refused operations.
    """
    refused: list[str] = []

    def handler(request: Any, event_name: str, **_: Any) -> Any:
        sent = request.headers.get("x-amz-checksum-sha256")
        if sent is None:
            return None
        sent = sent.decode() if isinstance(sent, bytes) else sent
        number = int(dict(parse_qsl(urlsplit(request.url).query)).get("partNumber", 0))
        body = request.body.getvalue() if hasattr(request.body, "getvalue") else request.body
        if number not in corrupt_parts and sha256_b64(body) == sent:
            return None
        refused.append(event_name.rsplit(".", 1)[-1])
        xml = b"<Error><Code>BadDigest</Code><Message>checksum mismatch</Message></Error>"
        headers = {"content-type": "application/xml"}
        return AioAWSResponse(request.url, 400, headers, _Body(xml))

    volume.conn.c.meta.events.register("before-send.s3", handler)
    return refused


async def test_the_probe_tells_a_verifying_endpoint(s3_volume: S3Volume, raw_s3: Any) -> None:
    refused = verifying_endpoint(s3_volume)
    assert await endpoint_verifies_sha256(s3_volume.conn, "vols/a") is True
    assert refused == ["PutObject"]  # the wrong probe, refused; the right one stored
    probes = raw_s3.list_objects_v2(Bucket=s3_volume.conn.bucket, Prefix="vols/a/.storage-proxy")
    assert probes.get("KeyCount", 0) == 0


async def test_a_part_refused_for_its_checksum_fails_the_write(make_s3: Any, raw_s3: Any) -> None:
    async with make_s3(**{"checksum-sha256": True}) as volume:
        vfid = await new_vfolder(volume)
        refused = verifying_endpoint(volume, corrupt_parts=frozenset({2}))
        with pytest.raises(BackendUnavailable, match="BadDigest"):
            await volume.write(vfid, rp("bad.bin"), body(os.urandom(12 * MiB)))
        assert "UploadPart" in refused
        assert pending_uploads(raw_s3, volume) == []
        assert [e async for e in volume.scandir(vfid, rp("."))] == []
