"""Cases every backend must pass; what differs is declared by capability flags."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from contract.spec import BackendSpec, all_specs
from storage_proxy.core.errors import (
    FileExists,
    FileNotFound,
    InvalidPath,
    QuotaExceeded,
    QuotaScopeExists,
    VFolderExists,
    VFolderNotFound,
)
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import (
    Capability,
    DirEntryType,
    QuotaConfig,
    QuotaScopeID,
    QuotaScopeType,
    VFolderID,
)
from storage_proxy.volumes.abc import AbstractVolume, ReadOptions, WriteOptions


def rp(path: str) -> RelPath:
    return RelPath.parse(path)


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(volume: AbstractVolume, vfid: VFolderID, path: str, **kw: int) -> bytes:
    return b"".join([c async for c in volume.read(vfid, rp(path), ReadOptions(**kw))])


async def new_vfolder(volume: AbstractVolume, qsid: QuotaScopeID | None = None) -> VFolderID:
    qsid = qsid or QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())
    if not await volume.quota_model.quota_scope_exists(qsid):
        await volume.quota_model.create_quota_scope(qsid, None)
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)
    return vfid


async def settled_usage(
    volume: AbstractVolume, vfid: VFolderID, spec: BackendSpec, expected: tuple[int, int]
) -> tuple[int, int]:
    deadline = time.monotonic() + spec.usage_settle_seconds
    while True:
        usage = await volume.get_usage(vfid)
        got = (usage.file_count, usage.used_bytes)
        if got == expected or time.monotonic() >= deadline:
            return got
        await asyncio.sleep(0.1)


async def test_capabilities_are_declared(volume: AbstractVolume) -> None:
    caps = await volume.get_capabilities()
    assert Capability.VFOLDER in caps and Capability.QUOTA in caps


async def test_vfolder_lifecycle(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    assert await volume.vfolder_exists(vfid)
    with pytest.raises(VFolderExists):
        await volume.create_vfolder(vfid)
    with pytest.raises(QuotaScopeExists):
        await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await volume.delete_vfolder(vfid)
    assert not await volume.vfolder_exists(vfid)
    with pytest.raises(VFolderNotFound):
        await volume.delete_vfolder(vfid)


async def test_file_operations(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    await volume.mkdir(vfid, rp("a/b"))
    with pytest.raises(FileExists):
        await volume.mkdir(vfid, rp("a/b"))
    await volume.write(vfid, rp("a/b/f.txt"), body(b"hello ", b"world"))
    assert await read(volume, vfid, "a/b/f.txt") == b"hello world"
    assert await read(volume, vfid, "a/b/f.txt", offset=6, length=3) == b"wor"
    names = {e.name: e.type async for e in volume.scandir(vfid, rp("a"))}
    assert names == {"b": DirEntryType.DIRECTORY}
    await volume.move_file(vfid, rp("a/b/f.txt"), rp("a/g.txt"))
    await volume.rename_file(vfid, rp("a/g.txt"), "h.txt")
    assert (await volume.stat(vfid, rp("a/h.txt"))).stat.size == 11
    with pytest.raises(FileNotFound):
        await volume.stat(vfid, rp("a/b/f.txt"))
    with pytest.raises(FileExists):
        await volume.write(vfid, rp("a/h.txt"), body(b"x"), WriteOptions(overwrite=False))
    await volume.delete_files(vfid, [rp("a")], recursive=True)
    assert [e async for e in volume.scandir(vfid, rp("."))] == []


async def test_paths_cannot_escape(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\x00b"):
        with pytest.raises(InvalidPath):
            await volume.mkdir(vfid, RelPath.parse(bad))


async def test_clone(volume: AbstractVolume) -> None:
    src = await new_vfolder(volume)
    await volume.write(src, rp("d/x.bin"), body(b"x" * 1000))
    dst = VFolderID(src.quota_scope_id, uuid.uuid4())
    await volume.clone_vfolder(src, dst)
    assert await read(volume, dst, "d/x.bin") == b"x" * 1000
    with pytest.raises(VFolderExists):
        await volume.clone_vfolder(src, dst)


async def test_usage(volume: AbstractVolume, spec: BackendSpec) -> None:
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("a.bin"), body(b"1" * 1000))
    await volume.write(vfid, rp("d/b.bin"), body(b"2" * 2345))
    assert await settled_usage(volume, vfid, spec, (2, 3345)) == (2, 3345)


async def test_quota_scope_limits_writes(volume: AbstractVolume, spec: BackendSpec) -> None:
    vfid = await new_vfolder(volume)
    qsid = vfid.quota_scope_id
    await volume.quota_model.update_quota_scope(qsid, QuotaConfig(64 * 1024))
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes == 64 * 1024
    await volume.write(vfid, rp("fits.bin"), body(b"f" * 16 * 1024))
    with pytest.raises(QuotaExceeded):
        await volume.write(
            vfid, rp("big.bin"), body(*[b"b" * 16 * 1024] * 8), WriteOptions(size_hint=128 * 1024)
        )
    with pytest.raises(QuotaExceeded):
        await volume.write(vfid, rp("stream.bin"), body(*[b"s" * 16 * 1024] * 8))
    names = sorted([e.name async for e in volume.scandir(vfid, rp("."))])
    assert names == ["fits.bin"]  # nothing half-written is left behind
    await volume.quota_model.unset_quota(qsid)
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes is None


_REPORTING = [s for s in all_specs() if s.report_usage is not None]


@pytest.mark.parametrize("spec", _REPORTING, indirect=True, ids=lambda s: s.name)
async def test_usage_and_limits_come_from_the_storage(
    volume: AbstractVolume, spec: BackendSpec
) -> None:
    """Usage is what the storage reports (nothing was written through the proxy), and a write
    that the storage's numbers leave no room for is refused, declared or streamed."""
    assert spec.report_usage is not None
    assert Capability.FAST_USAGE in await volume.get_capabilities()
    vfid = await new_vfolder(volume)
    qsid = vfid.quota_scope_id
    await volume.quota_model.update_quota_scope(qsid, QuotaConfig(1 << 20))
    spec.report_usage(volume, qsid, (1 << 20) - 4096)  # whole KiB: what every storage counts in
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert described is not None
    assert (described.used_bytes, described.limit_bytes) == ((1 << 20) - 4096, 1 << 20)
    assert await volume.quota_model.remaining_bytes(qsid) == 4096
    with pytest.raises(QuotaExceeded):
        await volume.write(
            vfid, rp("declared.bin"), body(b"d" * 8192), WriteOptions(size_hint=8192)
        )
    with pytest.raises(QuotaExceeded):
        await volume.write(vfid, rp("streamed.bin"), body(b"s" * 8192))
    await volume.write(vfid, rp("fits.bin"), body(b"f" * 2048))
    assert [e.name async for e in volume.scandir(vfid, rp("."))] == ["fits.bin"]
