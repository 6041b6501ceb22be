"""Proxy-enforced quota-scope limits on the vfs backend: every write through the proxy counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import QuotaConfig, VFolderID
from storage_proxy.volumes.abc import WriteOptions
from storage_proxy_vfs import VfsVolume


async def stream(total: int, chunk: int = 1000) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        sent += n
        yield b"q" * n
        await asyncio.sleep(0)


def files_in(volume: VfsVolume, vfid: VFolderID) -> list[str]:
    return sorted(p.name for p in volume.vfolder_path(vfid).iterdir())


async def limit(volume: VfsVolume, vfid: VFolderID, nbytes: int) -> None:
    await volume.quota_model.update_quota_scope(vfid.quota_scope_id, QuotaConfig(nbytes))


async def test_describe_reports_usage_and_limit(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await limit(vfs_volume, vfolder, 5000)
    await vfs_volume.write(vfolder, RelPath.parse("a"), stream(1234))
    usage = await vfs_volume.quota_model.describe_quota_scope(vfolder.quota_scope_id)
    assert usage is not None
    assert (usage.used_bytes, usage.limit_bytes) == (1234, 5000)
    await vfs_volume.quota_model.unset_quota(vfolder.quota_scope_id)
    usage = await vfs_volume.quota_model.describe_quota_scope(vfolder.quota_scope_id)
    assert usage is not None and usage.limit_bytes is None
    assert await vfs_volume.quota_model.describe_quota_scope(new_vfid().quota_scope_id) is None


async def test_declared_size_over_quota_is_refused_up_front(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    await limit(vfs_volume, vfolder, 10_000)
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for c in stream(20_000):
            consumed += len(c)
            yield c

    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(
            vfolder, RelPath.parse("big"), counting(), WriteOptions(size_hint=20_000)
        )
    assert consumed == 0  # refused before reading a byte
    assert files_in(vfs_volume, vfolder) == []


async def test_stream_growing_past_quota_is_cut_and_discarded(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    await limit(vfs_volume, vfolder, 10_000)
    await vfs_volume.write(vfolder, RelPath.parse("fits"), stream(4_000))
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(vfolder, RelPath.parse("grows"), stream(7_000))
    assert files_in(vfs_volume, vfolder) == ["fits"]
    # The failed write released its reservation: what still fits can be written.
    await vfs_volume.write(vfolder, RelPath.parse("rest"), stream(6_000))
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(vfolder, RelPath.parse("one-more"), stream(1))


async def test_limit_is_per_scope_across_vfolders(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    sibling = new_vfid(vfolder.quota_scope_id)
    await vfs_volume.create_vfolder(sibling)
    await limit(vfs_volume, vfolder, 8_000)
    await vfs_volume.write(vfolder, RelPath.parse("a"), stream(5_000))
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(sibling, RelPath.parse("b"), stream(5_000))
    other = new_vfid()  # another scope without a limit is unaffected
    await vfs_volume.quota_model.create_quota_scope(other.quota_scope_id, None)
    await vfs_volume.create_vfolder(other)
    await vfs_volume.write(other, RelPath.parse("c"), stream(50_000))


async def test_concurrent_writes_never_jointly_exceed(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    await limit(vfs_volume, vfolder, 100_000)
    writes = [
        vfs_volume.write(vfolder, RelPath.parse(f"f{i}"), stream(30_000, chunk=3_000))
        for i in range(6)
    ]
    results = await asyncio.gather(*writes, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(ok) + len(refused) == 6
    # 3 × 30,000 fit in 100,000; a fourth never can.  Which racers win depends on when the losers
    # hand their reservations back, so fewer may win; the room they left is then still there.
    assert 1 <= len(ok) <= 3
    for i in range(len(ok), 3):
        await vfs_volume.write(vfolder, RelPath.parse(f"late{i}"), stream(30_000))
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(vfolder, RelPath.parse("fourth"), stream(30_000))
    usage = await vfs_volume.get_usage(vfolder)
    assert usage.used_bytes == 90_000 and usage.file_count == 3


async def test_clone_that_does_not_fit_is_refused(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    await vfs_volume.write(vfolder, RelPath.parse("data"), stream(6_000))
    await limit(vfs_volume, vfolder, 10_000)
    dst = new_vfid(vfolder.quota_scope_id)
    with pytest.raises(QuotaExceeded):
        await vfs_volume.clone_vfolder(vfolder, dst)
    assert not vfs_volume.vfolder_path(dst).exists()
    await limit(vfs_volume, vfolder, 12_000)
    await vfs_volume.clone_vfolder(vfolder, dst)
    assert (await vfs_volume.get_usage(dst)).used_bytes == 6_000


async def test_deleting_frees_quota(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await limit(vfs_volume, vfolder, 10_000)
    await vfs_volume.write(vfolder, RelPath.parse("a"), stream(9_000))
    with pytest.raises(QuotaExceeded):
        await vfs_volume.write(vfolder, RelPath.parse("b"), stream(2_000))
    await vfs_volume.delete_files(vfolder, [RelPath.parse("a")])
    await vfs_volume.write(vfolder, RelPath.parse("b"), stream(2_000))
