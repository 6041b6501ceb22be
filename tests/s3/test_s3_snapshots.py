"""s3 snapshots beyond the contract: restores copy server-side (no byte of the snapshot passes
through the proxy), and a snapshot whose versions were expired behind the proxy's back answers
404 for those files, never 500.  On the session's RGW, with and without bucket versioning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from s3_server import s3_endpoint

from contract.backend_s3_versioned import s3_volume_in_mode
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import FileNotFound
from storage_proxy.core.snapshots import RestoreOptions
from storage_proxy_s3 import S3Volume
from storage_proxy_s3.manifest import ManifestTree


@pytest.fixture(params=["copies", "versions"])
async def s3vol(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[S3Volume]:
    async with s3_volume_in_mode(request.param, tmp_path) as volume:
        yield volume


async def test_restore_copies_server_side(s3vol: S3Volume, monkeypatch: pytest.MonkeyPatch) -> None:
    vfid = await new_vfolder(s3vol)
    s3vol.options["multipart-copy-threshold"] = 5 << 20  # a.bin: copied in parts, by version
    big = bytes(range(256)) * 40_000
    await s3vol.write(vfid, rp("a.bin"), body(big))
    await s3vol.write(vfid, rp("d/b.txt"), body(b"b-old"))
    await s3vol.create_snapshot(vfid, "s")
    await s3vol.write(vfid, rp("a.bin"), body(b"small now"))
    await s3vol.delete_files(vfid, [rp("d/b.txt")])
    await s3vol.write(vfid, rp("new.txt"), body(b"new"))

    def no_reads(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a restore read the snapshot through the proxy")

    monkeypatch.setattr(ManifestTree, "read", no_reads)
    report = await s3vol.restore_snapshot(vfid, "s", RestoreOptions())
    assert (report.files, report.bytes) == (2, len(big) + 5)
    assert await read(s3vol, vfid, "a.bin") == big
    assert await read(s3vol, vfid, "d/b.txt") == b"b-old"
    with pytest.raises(FileNotFound):
        await read(s3vol, vfid, "new.txt")
    usage = await s3vol.get_usage(vfid)
    assert (usage.file_count, usage.used_bytes) == (2, len(big) + 5)


async def test_a_version_expired_behind_the_proxy_is_404(s3vol: S3Volume) -> None:
    vfid = await new_vfolder(s3vol)
    await s3vol.write(vfid, rp("gone.txt"), body(b"old"))
    await s3vol.write(vfid, rp("kept.txt"), body(b"kept"))
    await s3vol.create_snapshot(vfid, "s")
    tree = await s3vol.snapshot_tree(vfid, "s")
    assert isinstance(tree, ManifestTree)
    stored = tree.manifest.files["gone.txt"]
    client = s3_endpoint().client()
    kw = {"VersionId": stored.version} if stored.version else {}
    client.delete_object(Bucket=s3vol.conn.bucket, Key=stored.key, **kw)  # a lifecycle rule

    with pytest.raises(FileNotFound):
        b"".join([c async for c in tree.read(rp("gone.txt"))])
    assert b"".join([c async for c in tree.read(rp("kept.txt"))]) == b"kept"
    with pytest.raises(FileNotFound):
        await s3vol.restore_snapshot(vfid, "s", RestoreOptions(relpaths=(rp("gone.txt"),)))
