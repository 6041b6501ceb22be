"""s3 snapshots are manifests (and copies) under ``<scope>/.sp-snapshots/``, beside the scope's
vfolders.  Whatever a tenant names -- ids, paths that spell the hidden prefix, files shaped like
a manifest in her own vfolder, two takers of one id at once --, a vfolder's snapshot holds only
its files, no user path reaches the hidden prefix, and deleting a vfolder drops only its
snapshots.  On the session's RGW, on a bucket without versioning (copies) and with (versions).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from s3_server import s3_endpoint

from contract.backend_s3_versioned import s3_volume_in_mode
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import (
    FileNotFound,
    InvalidParameter,
    InvalidPath,
    SnapshotExists,
    SnapshotNotFound,
)
from storage_proxy.core.types import Capability, DirEntryType
from storage_proxy_s3 import S3Volume

SECRET = b"B-SECRET"


@pytest.fixture(params=["copies", "versions"])
async def s3vol(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[S3Volume]:
    async with s3_volume_in_mode(request.param, tmp_path) as volume:
        yield volume


def _raw_keys(volume: S3Volume, prefix: str) -> list[str]:
    client = s3_endpoint().client()
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=volume.conn.bucket, Prefix=prefix
    ):
        found.extend(item["Key"] for item in page.get("Contents", []))
    return found


async def test_only_its_own_files_and_no_path_to_the_hidden_prefix(s3vol: S3Volume) -> None:
    a = await new_vfolder(s3vol)
    b = await new_vfolder(s3vol, a.quota_scope_id)
    await s3vol.write(a, rp("mine.txt"), body(b"mine"))
    await s3vol.write(b, rp("secret.txt"), body(SECRET))
    info = await s3vol.create_snapshot(a, "s")
    assert info.size == 4
    await s3vol.write(a, rp("mine.txt"), body(b"overwritten"))

    tree = await s3vol.snapshot_tree(a, "s")
    assert {e.path: e.type for e in await tree.scandir(rp("."), recursive=True)} == {
        "mine.txt": DirEntryType.FILE
    }
    assert b"".join([c async for c in tree.read(rp("mine.txt"))]) == b"mine"
    for other in (b,):
        assert await s3vol.list_snapshots(other) == []
        with pytest.raises(SnapshotNotFound):
            await s3vol.snapshot_tree(other, "s")
        with pytest.raises(SnapshotNotFound):
            await s3vol.delete_snapshot(other, "s")

    hidden = s3vol.snapshots_prefix(a)
    assert any(k.startswith(hidden) for k in _raw_keys(s3vol, hidden))
    assert not hidden.startswith(s3vol.vfolder_prefix(a))
    for probe in ("../.sp-snapshots", "../../../../.sp-snapshots/x", "/.sp-snapshots"):
        with pytest.raises(InvalidPath):
            rp(probe)
    for probe in (".sp-snapshots/s.json", f".sp-snapshots/{a.folder_id.hex}/s.json"):
        with pytest.raises(FileNotFound):
            await read(s3vol, a, probe)
    for bad in ("*", "../s", "a/b", ".sp", "", "s.json"):
        with pytest.raises(InvalidParameter):
            await s3vol.snapshot_tree(a, bad)
    layout = await s3vol.stored_vfolders()
    assert layout.strays == ()  # the hidden prefix is the proxy's own, not a stray


async def test_a_planted_manifest_is_just_a_file(s3vol: S3Volume) -> None:
    """B writes, inside her vfolder, keys shaped like A's hidden manifest: nobody's snapshot."""
    a = await new_vfolder(s3vol)
    b = await new_vfolder(s3vol, a.quota_scope_id)
    await s3vol.write(b, rp("secret.txt"), body(SECRET))
    b_secret = s3vol.file_key(b, rp("secret.txt"))
    forged = {
        "created": 0,
        "mode": "copies",
        "token": "x",
        "files": [["stolen.txt", len(SECRET), 0, b_secret, None]],
        "dirs": [],
    }
    for where in (f".sp-snapshots/{a.folder_id.hex}/x.json", "x.json"):
        await s3vol.write(b, rp(where), body(json.dumps(forged).encode()))
    assert await s3vol.list_snapshots(a) == []
    with pytest.raises(SnapshotNotFound):
        await s3vol.snapshot_tree(a, "x")
    assert await s3vol.list_snapshots(b) == []


async def test_two_takers_of_one_id_one_wins(s3vol: S3Volume) -> None:
    a = await new_vfolder(s3vol)
    for i in range(4):
        await s3vol.write(a, rp(f"f{i}.txt"), body(b"x" * 1000))
    results = await asyncio.gather(
        *(s3vol.create_snapshot(a, "same") for _ in range(3)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, SnapshotExists) for e in lost), results
    tree = await s3vol.snapshot_tree(a, "same")
    assert len(await tree.scandir(rp("."))) == 4
    if not s3vol.versioned:  # only the winner's copies are left
        copies = _raw_keys(s3vol, f"{s3vol.snapshots_prefix(a)}same/")
        assert len(copies) == 4, copies
        assert Capability.SNAPSHOT_QUOTA in await s3vol.get_capabilities()
    else:
        assert _raw_keys(s3vol, f"{s3vol.snapshots_prefix(a)}same/") == []
        assert Capability.SNAPSHOT_QUOTA not in await s3vol.get_capabilities()


async def test_deleting_a_vfolder_drops_only_its_snapshots(s3vol: S3Volume) -> None:
    a = await new_vfolder(s3vol)
    b = await new_vfolder(s3vol, a.quota_scope_id)
    for v in (a, b):
        await s3vol.write(v, rp("f.txt"), body(b"data"))
        await s3vol.create_snapshot(v, "s")
    await s3vol.delete_vfolder(a)
    assert _raw_keys(s3vol, s3vol.snapshots_prefix(a)) == []
    assert [s.id for s in await s3vol.list_snapshots(b)] == ["s"]
    tree: Any = await s3vol.snapshot_tree(b, "s")
    assert b"".join([c async for c in tree.read(rp("f.txt"))]) == b"data"
