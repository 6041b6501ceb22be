"""s3 file versions are the bucket's object versions, looked up in the file's own listing, with
their records under ``<scope>/.sp-versions/``.  Whatever id a tenant names -- another vfolder's
version, the file's current version, a record's, a forged one --, it is not a version of her
file; no user path reaches the records; and trimming (a limit, or versions off) never deletes a
version a snapshot of the vfolder still names.  On the session's RGW, a bucket with versioning.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from s3_server import s3_endpoint

from contract.backend_s3_versioned import s3_volume_in_mode
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import FileNotFound, InvalidPath, VersionInSnapshot, VersionNotFound
from storage_proxy.core.files import KeepVersions, ReadOptions, WriteOptions
from storage_proxy.core.types import Capability, VFolderID
from storage_proxy_s3 import S3Volume

KEEP1 = KeepVersions(limit=1, who="user:a")


@pytest.fixture
async def s3v(tmp_path: Path) -> AsyncIterator[S3Volume]:
    async with s3_volume_in_mode("versions", tmp_path) as volume:
        assert Capability.FILE_VERSIONS in await volume.get_capabilities()
        yield volume


def _all_versions(volume: S3Volume, key: str) -> list[str]:
    r = s3_endpoint().client().list_object_versions(Bucket=volume.conn.bucket, Prefix=key)
    return [v["VersionId"] for v in r.get("Versions", []) if v["Key"] == key]


async def _refused(volume: S3Volume, vfid: VFolderID, path: str, vid: str) -> None:
    rel = rp(path)
    with pytest.raises(VersionNotFound):
        await volume.open_version(vfid, rel, vid)
    with pytest.raises(VersionNotFound):
        await volume.restore_version(vfid, rel, vid, KEEP1)
    with pytest.raises(VersionNotFound):
        await volume.delete_version(vfid, rel, vid)
    with pytest.raises(VersionNotFound):
        _ = [c async for c in volume.read_version(vfid, rel, vid, ReadOptions())]


async def test_only_the_files_own_versions(s3v: S3Volume) -> None:
    a = await new_vfolder(s3v)
    b = await new_vfolder(s3v, a.quota_scope_id)
    for data in (b"b-secret-1", b"b-secret-2"):
        await s3v.write(b, rp("f.txt"), body(data), WriteOptions(keep=KEEP1))
    await s3v.write(a, rp("f.txt"), body(b"a-1"), WriteOptions(keep=KEEP1))
    await s3v.write(a, rp("f.txt"), body(b"a-2"), WriteOptions(keep=KEEP1))
    theirs = (await s3v.list_versions(b, rp("f.txt")))[0].id
    assert await read(s3v, a, "f.txt") == b"a-2"
    current = _all_versions(s3v, s3v.file_key(a, rp("f.txt")))[0]
    records = s3v.versions_prefix(a)
    record_ids = [
        v["VersionId"]
        for v in s3_endpoint()
        .client()
        .list_object_versions(Bucket=s3v.conn.bucket, Prefix=records)
        .get("Versions", [])
    ]
    assert record_ids  # the kept version has its record
    for vid in (theirs, current, *record_ids, "null", "0" * 32, "../f.txt", "f.txt"):
        await _refused(s3v, a, "f.txt", vid)
    await _refused(s3v, a, "other.txt", (await s3v.list_versions(a, rp("f.txt")))[0].id)
    assert await read(s3v, b, "f.txt") == b"b-secret-2"  # nothing of B's was touched
    assert [v.size for v in await s3v.list_versions(b, rp("f.txt"))] == [10]


async def test_no_path_to_the_records(s3v: S3Volume) -> None:
    a = await new_vfolder(s3v)
    await s3v.write(a, rp("f.txt"), body(b"one"), WriteOptions(keep=KEEP1))
    await s3v.write(a, rp("f.txt"), body(b"two"), WriteOptions(keep=KEEP1))
    hidden = s3v.versions_prefix(a)
    assert not hidden.startswith(s3v.vfolder_prefix(a))
    for probe in ("../.sp-versions", "../../../../.sp-versions/x", "/.sp-versions"):
        with pytest.raises(InvalidPath):
            rp(probe)
    for probe in (".sp-versions", f".sp-versions/{a.folder_id.hex}"):
        with pytest.raises(FileNotFound):
            await read(s3v, a, probe)
    # a tenant's look-alike of a record is just her file, and names no version of it
    fake = {"path": "f.txt", "who": "user:root", "reason": "overwrite", "sha256": "0" * 64}
    await s3v.write(a, rp(".sp-versions/x.json"), body(json.dumps(fake).encode()))
    versions = await s3v.list_versions(a, rp("f.txt"))
    assert [(v.size, v.who) for v in versions] == [(3, "user:a")]
    assert {e.name async for e in s3v.scandir(a, rp("."))} == {"f.txt", ".sp-versions"}
    assert (await s3v.stored_vfolders()).strays == ()


async def test_trimming_spares_what_a_snapshot_names(s3v: S3Volume) -> None:
    a = await new_vfolder(s3v)
    key = s3v.file_key(a, rp("f.txt"))
    await s3v.write(a, rp("f.txt"), body(b"snapshotted"))
    named = _all_versions(s3v, key)[0]
    await s3v.create_snapshot(a, "s")
    for n in range(3):  # a limit of 1: the older ones go, not the snapshot's
        await s3v.write(a, rp("f.txt"), body(b"w%d" % n), WriteOptions(keep=KEEP1))
    ids = [v.id for v in await s3v.list_versions(a, rp("f.txt"))]
    assert len(ids) == 2 and ids[-1] == named
    await s3v.write(a, rp("f.txt"), body(b"off"))  # versions off: the replaced one goes
    assert [v.id for v in await s3v.list_versions(a, rp("f.txt"))] == ids[:1] + [named]
    await s3v.write(a, rp("g.txt"), body(b"g0"))
    await s3v.create_snapshot(a, "t")
    await s3v.write(a, rp("g.txt"), body(b"g1"))  # off, but the snapshot names g0's version
    tree = await s3v.snapshot_tree(a, "t")
    assert b"".join([c async for c in tree.read(rp("g.txt"))]) == b"g0"
    with pytest.raises(VersionInSnapshot) as refused:
        await s3v.delete_version(a, rp("f.txt"), named)
    assert refused.value.status == 409 and refused.value.code == "version-in-snapshot"
    await s3v.delete_files(a, [rp("f.txt")])  # a delete with versions off
    assert named in _all_versions(s3v, key)
    tree = await s3v.snapshot_tree(a, "s")
    assert b"".join([c async for c in tree.read(rp("f.txt"))]) == b"snapshotted"

    await s3v.delete_snapshot(a, "s")  # no longer named: the next trim drops it
    await s3v.write(a, rp("f.txt"), body(b"again"))  # a new file after the delete
    await s3v.write(a, rp("f.txt"), body(b"again!"), WriteOptions(keep=KEEP1))
    assert named not in _all_versions(s3v, key)
    kept = await s3v.list_versions(a, rp("f.txt"))
    assert len(kept) == 2 and kept[0].size == len(b"again")  # and "off", which "t" names


async def test_kept_versions_count_against_the_scope(s3v: S3Volume) -> None:
    a = await new_vfolder(s3v)
    await s3v.write(a, rp("f.txt"), body(b"x" * 1000))
    qsid = a.quota_scope_id
    s3v.quota_model.invalidate(a)
    before = await s3v.quota_model.describe_quota_scope(qsid)
    await s3v.write(a, rp("f.txt"), body(b"y" * 1000), WriteOptions(keep=KEEP1))
    s3v.quota_model.invalidate(a)
    after = await s3v.quota_model.describe_quota_scope(qsid)
    assert before is not None and after is not None
    assert after.used_bytes >= before.used_bytes + 1000
    assert (await s3v.get_usage(a)).used_bytes == 1000  # the vfolder's own: current files


async def test_deleting_a_vfolder_drops_its_versions_only(s3v: S3Volume) -> None:
    a = await new_vfolder(s3v)
    b = await new_vfolder(s3v, a.quota_scope_id)
    for v in (a, b):
        for data in (b"1", b"22"):
            await s3v.write(v, rp("f.txt"), body(data), WriteOptions(keep=KEEP1))
    await s3v.move_file(a, rp("f.txt"), rp("g.txt"), keep=KEEP1)
    assert [v.size for v in await s3v.list_versions(a, rp("f.txt"))] == [1]  # not the moved one
    await s3v.delete_vfolder(a)
    for prefix in (s3v.vfolder_prefix(a), s3v.versions_prefix(a)):
        listed = s3_endpoint().client().list_object_versions(Bucket=s3v.conn.bucket, Prefix=prefix)
        assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    assert [v.size for v in await s3v.list_versions(b, rp("f.txt"))] == [1]
