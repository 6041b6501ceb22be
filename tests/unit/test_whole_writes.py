"""A small body that has arrived whole is written in one blocking step (one thread hop, not
one per step), with everything the streamed path does: checksums, versions kept, quota held,
paths refused; a large body still streams."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storage_proxy.core.errors import QuotaExceeded
from storage_proxy.core.files import KeepVersions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import QuotaConfig, VFolderID
from storage_proxy.volumes.abc import WriteOptions
from storage_proxy.volumes.posix_whole import WHOLE_MAX
from storage_proxy_vfs import VfsVolume


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def counting_hops(volume: VfsVolume, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    run = volume.run_blocking

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await run(func, *args, **kwargs)

    monkeypatch.setattr(volume, "run_blocking", counted)
    return hops


async def test_a_small_body_is_one_hop(
    vfs_volume: VfsVolume, vfolder: VFolderID, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = counting_hops(vfs_volume, monkeypatch)
    data = b"x" * 4096
    meta = await vfs_volume.write(
        vfolder, RelPath.parse("d/small.bin"), chunks(data), WriteOptions(checksums=True)
    )
    assert len(hops) == 1, hops
    assert meta.size == 4096 and meta.sha256 == hashlib.sha256(data).hexdigest()
    assert (await vfs_volume.get_file_meta(vfolder, RelPath.parse("d/small.bin"))) == meta


async def test_a_large_body_still_streams(
    vfs_volume: VfsVolume, vfolder: VFolderID, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = counting_hops(vfs_volume, monkeypatch)
    data = bytes(range(256)) * ((WHOLE_MAX // 256) + 10)
    meta = await vfs_volume.write(vfolder, RelPath.parse("big.bin"), chunks(data, 64 << 10))
    assert len(hops) > 1 and meta.size == len(data)
    got = b"".join([c async for c in vfs_volume.read(vfolder, RelPath.parse("big.bin"))])
    assert got == data


async def test_one_step_keeps_versions_and_holds_the_quota(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    rel = RelPath.parse("f.txt")
    keep = WriteOptions(keep=KeepVersions(5, who="user:alice"))
    for n in range(3):
        await vfs_volume.write(vfolder, rel, chunks(f"v{n}".encode()), keep)
    assert [v.size for v in await vfs_volume.list_versions(vfolder, rel)] == [2, 2]
    await vfs_volume.quota_model.update_quota_scope(vfolder.quota_scope_id, QuotaConfig(5_000))
    vfs_volume.quota_model.invalidate(vfolder)
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(vfolder, RelPath.parse("over.bin"), chunks(b"y" * 6_000))
    assert not (vfs_volume.vfolder_path(vfolder) / "over.bin").exists()
