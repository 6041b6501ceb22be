"""CephFS native snapshots on the real CephFS (ceph-fuse): ``.snap`` entries taken at once,
never reachable through a user path, removed with a purged vfolder."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import (
    FileNotFound,
    InvalidParameter,
    InvalidPath,
    SnapshotNotFound,
    StorageProxyError,
)
from storage_proxy.core.files import KeepVersions, ReadOptions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.snapshots import RestoreOptions
from storage_proxy.core.types import DirEntryType, VFolderID
from storage_proxy.volumes import beneath
from storage_proxy.volumes.abc import WriteOptions
from storage_proxy_cephfs import CephFSVolume


def rp(path: str) -> RelPath:
    return RelPath.parse(path)


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read(volume: CephFSVolume, vfid: VFolderID, path: str) -> bytes:
    return b"".join([c async for c in volume.read(vfid, rp(path), ReadOptions())])


@pytest.fixture(params=[False, True], ids=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest) -> Iterator[bool]:
    beneath.use_walk(request.param)
    yield request.param
    beneath.use_walk(False)


async def populated(volume: CephFSVolume) -> VFolderID:
    vfid = new_vfid()
    await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await volume.create_vfolder(vfid)
    await volume.write(vfid, rp("a.txt"), body(b"a-old"))
    await volume.write(vfid, rp("d/b.txt"), body(b"b-old"))
    return vfid


async def test_a_snapshot_is_a_snap_entry_taken_at_once(cephfs_volume: CephFSVolume) -> None:
    vfid = await populated(cephfs_volume)
    started = time.monotonic()
    info = await cephfs_volume.create_snapshot(vfid, "s1")
    assert time.monotonic() - started < 1.0
    root = cephfs_volume.vfolder_path(vfid)
    assert os.listdir(root / ".snap") == ["s1"]
    assert abs(info.created.timestamp() - time.time()) < 60
    await cephfs_volume.write(vfid, rp("a.txt"), body(b"a-new"))
    assert (root / ".snap" / "s1" / "a.txt").read_bytes() == b"a-old"
    # a snapshot of an ancestor shows as _<name>_<ino> below it: not the vfolder's
    os.mkdir(root.parent / ".snap" / "above")
    try:
        assert [s.id for s in await cephfs_volume.list_snapshots(vfid)] == ["s1"]
    finally:
        os.rmdir(root.parent / ".snap" / "above")
    with pytest.raises(InvalidParameter):
        await cephfs_volume.delete_snapshot(vfid, "_above_1")
    await cephfs_volume.delete_snapshot(vfid, "s1")
    assert os.listdir(root / ".snap") == []
    with pytest.raises(SnapshotNotFound):
        await cephfs_volume.delete_snapshot(vfid, "s1")


@pytest.mark.hostile
async def test_no_user_path_reaches_snap(cephfs_volume: CephFSVolume, resolution: bool) -> None:
    """``.snap`` is in every directory without being listed: refused as a path component, as a
    link's target, as a name to create, move onto or delete -- under both resolutions."""
    vfid = await populated(cephfs_volume)
    await cephfs_volume.create_snapshot(vfid, "s1")
    root = cephfs_volume.vfolder_path(vfid)
    os.symlink(".snap/s1", root / "ln")  # what a compute session could plant
    os.symlink("d/.snap", root / "ln2")
    os.symlink(str(root / ".snap"), root / "abs")
    refused = (FileNotFound, InvalidPath)
    for probe in (".snap/s1/a.txt", "d/.snap", ".snap", "ln/a.txt", "ln2", "abs/s1/a.txt"):
        with pytest.raises(refused):
            await read(cephfs_volume, vfid, probe)
        if probe == "ln2":  # the link itself is the tenant's: its stat is the link's
            assert (await cephfs_volume.stat(vfid, rp(probe))).type is DirEntryType.SYMLINK
        else:
            with pytest.raises(refused):
                await cephfs_volume.stat(vfid, rp(probe))
        with pytest.raises(refused):
            [e async for e in cephfs_volume.scandir(vfid, rp(probe))]
    with pytest.raises(refused):
        await cephfs_volume.mkdir(vfid, rp(".snap/evil"), parents=True)
    with pytest.raises(refused):
        await cephfs_volume.mkdir(vfid, rp("ln/evil"), parents=True)
    with pytest.raises(refused):
        await cephfs_volume.write(vfid, rp(".snap/s1/x"), body(b"x"))
    with pytest.raises(refused):
        await cephfs_volume.delete_files(vfid, [rp(".snap/s1")], recursive=True)
    with pytest.raises(refused):
        await cephfs_volume.move_file(vfid, rp("a.txt"), rp(".snap/s2"))
    with pytest.raises(refused):
        await cephfs_volume.move_file(vfid, rp(".snap/s1"), rp("stolen"))
    with pytest.raises(refused):
        await cephfs_volume.check_path(vfid, rp(".snap/s1"))
    assert os.listdir(root / ".snap") == ["s1"]  # no snapshot made, none removed
    assert [s.id for s in await cephfs_volume.list_snapshots(vfid)] == ["s1"]

    # inside a snapshot too: no nested .snap, and its links lead nowhere outside it
    await cephfs_volume.create_snapshot(vfid, "s2")  # holds ln, ln2, abs
    tree = await cephfs_volume.snapshot_tree(vfid, "s2")
    for probe in ("ln/a.txt", "ln2/s1", "abs/s1/a.txt", ".snap", "d/.snap/s1"):
        with pytest.raises(refused):
            await tree.stat(rp(probe))
        with pytest.raises(refused):
            [c async for c in tree.read(rp(probe))]


async def test_restore_from_a_native_snapshot(cephfs_volume: CephFSVolume) -> None:
    vfid = await populated(cephfs_volume)
    await cephfs_volume.create_snapshot(vfid, "s1")
    await cephfs_volume.write(vfid, rp("a.txt"), body(b"a-new"))
    await cephfs_volume.write(vfid, rp("new.txt"), body(b"new"))
    await cephfs_volume.delete_files(vfid, [rp("d")], recursive=True)
    report = await cephfs_volume.restore_snapshot(vfid, "s1", RestoreOptions())
    assert report.files == 2
    assert await read(cephfs_volume, vfid, "a.txt") == b"a-old"
    assert await read(cephfs_volume, vfid, "d/b.txt") == b"b-old"
    with pytest.raises(FileNotFound):
        await cephfs_volume.stat(vfid, rp("new.txt"))
    assert [s.id for s in await cephfs_volume.list_snapshots(vfid)] == ["s1"]


async def test_a_deleted_vfolder_with_snapshots_is_purged(cephfs_volume: CephFSVolume) -> None:
    """CephFS refuses to remove a directory with snapshots: the purge drops them first (also
    ones a compute session made in a subdirectory)."""
    vfid = await populated(cephfs_volume)
    await cephfs_volume.create_snapshot(vfid, "s1")
    os.mkdir(cephfs_volume.vfolder_path(vfid) / "d" / ".snap" / "mine")
    await cephfs_volume.delete_vfolder(vfid)
    trash = cephfs_volume.trash_dir(vfid)
    assert len(os.listdir(trash)) >= 1
    report = await cephfs_volume.purge_trash(time.time() + 1)
    assert report.purged
    assert [n for n in os.listdir(trash) if vfid.folder_id.hex in n] == []


async def test_versions_on_cephfs_are_kept_outside_the_vfolder(
    cephfs_volume: CephFSVolume,
) -> None:
    vfid = await populated(cephfs_volume)
    keep = KeepVersions(limit=3, who="user:a")
    await cephfs_volume.set_vfolder_quota(vfid, 64 << 20)  # the vfolder its own quota realm
    for n in range(3):
        await cephfs_volume.write(vfid, rp("a.txt"), body(b"v%d" % n), WriteOptions(keep=keep))
    sizes = [v.size for v in await cephfs_volume.list_versions(vfid, rp("a.txt"))]
    assert sizes == [2, 2, 5]
    assert sorted(os.listdir(cephfs_volume.vfolder_path(vfid))) == ["a.txt", "d"]


async def test_snapshot_errors_are_domain_errors(cephfs_volume: CephFSVolume) -> None:
    vfid = await populated(cephfs_volume)
    with pytest.raises(StorageProxyError):
        await cephfs_volume.create_snapshot(vfid, "../x")
    with pytest.raises(SnapshotNotFound):
        await cephfs_volume.snapshot_tree(vfid, "nope")
