"""The cephfs backend against a real single-node CephFS (ceph-fuse): quotas, rstats, EDQUOT."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import new_qsid, new_vfid
from storage_proxy.core.errors import PluginError, QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import Capability, QuotaConfig, VFolderID, VFolderUsage
from storage_proxy.volumes.abc import UploadTarget, VolumeDeps, WriteOptions
from storage_proxy.volumes.posix import STAGING_MARK
from storage_proxy_cephfs import CephFSVolume

MiB = 1 << 20


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b"q" * size


def quota_xattr(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, "ceph.quota.max_bytes")
    except OSError as e:
        assert e.errno == errno.ENODATA
        return None


async def vfolder(volume: CephFSVolume, limit: int | None = None) -> VFolderID:
    vfid = new_vfid()
    await volume.quota_model.create_quota_scope(
        vfid.quota_scope_id, QuotaConfig(limit) if limit else None
    )
    await volume.create_vfolder(vfid)
    return vfid


async def settled(volume: CephFSVolume, vfid: VFolderID, want: VFolderUsage) -> VFolderUsage:
    """Recursive stats propagate lazily: poll (up to 10 s) instead of sleeping."""
    deadline = time.monotonic() + 10
    while True:
        got = await volume.get_usage(vfid)
        if got == want or time.monotonic() >= deadline:
            return got
        await asyncio.sleep(0.1)


def leftovers(path: Path) -> list[str]:
    return [n for _, _, files in os.walk(path) for n in files if STAGING_MARK in n]


async def test_capabilities(cephfs_volume: CephFSVolume) -> None:
    caps = await cephfs_volume.get_capabilities()
    assert caps == {
        Capability.VFOLDER,
        Capability.QUOTA,
        Capability.NATIVE_QUOTA,
        Capability.FAST_USAGE,
        Capability.LOCAL_PATH,
        Capability.XATTR,
        Capability.SNAPSHOT,
        Capability.NATIVE_SNAPSHOT,
        Capability.FILE_VERSIONS,
    }


async def test_init_refuses_a_path_not_on_cephfs(tmp_path: Path, volume_deps: VolumeDeps) -> None:
    volume = CephFSVolume("local", tmp_path / "not-ceph", deps=volume_deps)
    with pytest.raises(PluginError, match="not on CephFS"):
        await volume.init()


async def test_scope_limit_is_the_xattr(cephfs_volume: CephFSVolume) -> None:
    model = cephfs_volume.quota_model
    qsid = new_qsid()
    await model.create_quota_scope(qsid, QuotaConfig(5 * MiB))
    path = cephfs_volume.quota_scope_path(qsid)
    assert quota_xattr(path) == str(5 * MiB).encode()
    await model.update_quota_scope(qsid, QuotaConfig(7 * MiB))
    assert quota_xattr(path) == str(7 * MiB).encode()
    described = await model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes == 7 * MiB
    await model.unset_quota(qsid)
    assert quota_xattr(path) is None
    described = await model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes is None
    await model.update_quota_scope(qsid, QuotaConfig(0))  # 0 unsets, as in Ceph
    assert quota_xattr(path) is None
    assert await model.describe_quota_scope(new_qsid()) is None


async def test_usage_from_rstats_without_a_walk(cephfs_volume: CephFSVolume) -> None:
    vfid = await vfolder(cephfs_volume)

    async def no_walk(root: Path) -> VFolderUsage:
        raise AssertionError(f"usage walked {root}")

    object.__setattr__(cephfs_volume.deps, "scanner", type("S", (), {"scan": no_walk})())
    await cephfs_volume.mkdir(vfid, RelPath.parse("d/e"))
    await cephfs_volume.write(vfid, RelPath.parse("d/a.bin"), chunks(128 * 1024))
    await cephfs_volume.write(vfid, RelPath.parse("d/e/b.bin"), chunks(64 * 1024))
    want = VFolderUsage(2, 192 * 1024)  # rfiles: directories are not counted
    assert await settled(cephfs_volume, vfid, want) == want
    model = cephfs_volume.quota_model
    deadline = time.monotonic() + 10  # the scope, one level up, settles a little later
    while True:
        described = await model.describe_quota_scope(vfid.quota_scope_id)
        assert described is not None
        if described.used_bytes == 192 * 1024 or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    assert described.used_bytes == 192 * 1024


async def test_stream_past_a_scope_quota_leaves_nothing_behind(
    cephfs_volume: CephFSVolume,
) -> None:
    """No declared size, a limit on the scope only: the stream is stopped — by Ceph's EDQUOT or,
    where ceph-fuse fails to enforce a quota set three levels up, by the proxy's safety net — and
    the staged file is removed."""
    vfid = await vfolder(cephfs_volume, limit=1 * MiB)
    with pytest.raises(QuotaExceeded):
        await cephfs_volume.write(vfid, RelPath.parse("big.bin"), chunks(16 * MiB))
    root = cephfs_volume.vfolder_path(vfid)
    assert os.listdir(root) == []
    assert leftovers(cephfs_volume.quota_scope_path(vfid.quota_scope_id)) == []
    # a declared size that cannot fit is refused up front, from the xattrs
    with pytest.raises(QuotaExceeded, match="declared"):
        await cephfs_volume.write(
            vfid, RelPath.parse("hint.bin"), chunks(2 * MiB), WriteOptions(size_hint=2 * MiB)
        )
    await cephfs_volume.write(vfid, RelPath.parse("small.bin"), chunks(256 * 1024))
    assert os.listdir(root) == ["small.bin"]


async def test_nested_vfolder_quota(cephfs_volume: CephFSVolume) -> None:
    vfid = await vfolder(cephfs_volume)  # the scope itself is unlimited
    other = VFolderID(vfid.quota_scope_id, uuid.uuid4())
    await cephfs_volume.create_vfolder(other)
    await cephfs_volume.set_vfolder_quota(vfid, 1 * MiB)
    assert quota_xattr(cephfs_volume.vfolder_path(vfid)) == str(MiB).encode()
    assert await cephfs_volume.quota_model.headroom(vfid) == 1 * MiB
    with pytest.raises(QuotaExceeded):
        await cephfs_volume.write(vfid, RelPath.parse("x.bin"), chunks(8 * MiB))
    assert os.listdir(cephfs_volume.vfolder_path(vfid)) == []
    await cephfs_volume.write(other, RelPath.parse("x.bin"), chunks(4 * MiB))  # not limited
    await cephfs_volume.set_vfolder_quota(vfid, None)
    assert await cephfs_volume.quota_model.headroom(vfid) is None
    await cephfs_volume.write(vfid, RelPath.parse("x.bin"), chunks(4 * MiB))


async def test_delete_vfolder_under_a_scope_quota(cephfs_volume: CephFSVolume) -> None:
    """A rename out of a quota realm is EXDEV on CephFS: the trash must be inside the scope."""
    vfid = await vfolder(cephfs_volume, limit=8 * MiB)
    await cephfs_volume.set_vfolder_quota(vfid, 4 * MiB)
    await cephfs_volume.write(vfid, RelPath.parse("f.bin"), chunks(64 * 1024))
    await cephfs_volume.delete_vfolder(vfid)
    assert not await cephfs_volume.vfolder_exists(vfid)


async def test_upload_published_across_quota_realms(cephfs_volume: CephFSVolume) -> None:
    """Uploads are staged outside the scope; publishing copies them in (EXDEV on rename)."""
    vfid = await vfolder(cephfs_volume, limit=2 * MiB)
    session = uuid.uuid4().hex
    await cephfs_volume.upload_prepare(session, UploadTarget(vfid, RelPath.parse("up.bin")))
    async with cephfs_volume.upload_hold(session) as held:
        await cephfs_volume.upload_append(held, 0, chunks(512 * 1024))
        await cephfs_volume.upload_publish(held, vfid, RelPath.parse("up.bin"), checksums=True)
    meta = await cephfs_volume.get_file_meta(vfid, RelPath.parse("up.bin"))
    assert meta.size == 512 * 1024
    assert meta.sha256 == hashlib.sha256(b"q" * 512 * 1024).hexdigest()
