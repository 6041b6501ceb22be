"""Snapshots of vfolders and versions of files, on every backend: what a backend may not do it
declares by capability flags (``snapshot``, ``snapshot-quota``, ``file-versions``), and then
refuses with ``not-supported``; what it declares it does the same way as every other."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from contract.spec import BackendSpec
from contract.test_contract import body, new_vfolder, read, rp, settled_usage
from storage_proxy.core.errors import (
    FileExists,
    FileNotFound,
    InvalidPath,
    NotSupported,
    SnapshotExists,
    SnapshotNotFound,
    StorageProxyError,
    VersionNotFound,
)
from storage_proxy.core.files import KeepVersions, ReadOptions, WriteOptions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.snapshots import Progress, RestoreOptions
from storage_proxy.core.types import Capability, DirEntryType, VFolderID
from storage_proxy.volumes.abc import AbstractVolume
from storage_proxy.volumes.snapshots import SnapshotTree

KEEP = KeepVersions(limit=2, who="user:alice")


async def _caps(volume: AbstractVolume) -> frozenset[Capability]:
    return await volume.get_capabilities()


async def _tree_read(tree: SnapshotTree, path: str) -> bytes:
    return b"".join([c async for c in tree.read(rp(path))])


async def _files(volume: AbstractVolume, vfid: VFolderID) -> dict[str, bytes]:
    entries = [e async for e in volume.scandir(vfid, rp("."), recursive=True, limit=None)]
    return {
        e.path: await read(volume, vfid, e.path) for e in entries if e.type is DirEntryType.FILE
    }


async def _populated(volume: AbstractVolume) -> VFolderID:
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("a.txt"), body(b"a-old"), WriteOptions(checksums=True))
    await volume.write(vfid, rp("d/b.txt"), body(b"b-old"))
    await volume.write(vfid, rp("d/e/c.txt"), body(b"c-old"))
    return vfid


async def _change(volume: AbstractVolume, vfid: VFolderID) -> None:
    await volume.write(vfid, rp("a.txt"), body(b"a-new!"))
    await volume.delete_files(vfid, [rp("d/b.txt")])
    await volume.write(vfid, rp("d/new.txt"), body(b"new"))
    await volume.write(vfid, rp("top.txt"), body(b"top"))


SNAPSHOTTED = {"a.txt": b"a-old", "d/b.txt": b"b-old", "d/e/c.txt": b"c-old"}


async def test_snapshots_taken_listed_read_and_deleted(volume: AbstractVolume) -> None:
    vfid = await _populated(volume)
    if Capability.SNAPSHOT not in await _caps(volume):
        assert await volume.list_snapshots(vfid) == []
        with pytest.raises(NotSupported):
            await volume.create_snapshot(vfid, "s1")
        return
    progress = Progress()
    info = await volume.create_snapshot(vfid, "s1", progress)
    assert info.id == "s1"
    with pytest.raises(SnapshotExists):
        await volume.create_snapshot(vfid, "s1")
    await _change(volume, vfid)
    assert [s.id for s in await volume.list_snapshots(vfid)] == ["s1"]

    tree = await volume.snapshot_tree(vfid, "s1")
    names = {e.path: e.type for e in await tree.scandir(rp("."), recursive=True)}
    assert names == {
        "a.txt": DirEntryType.FILE, "d": DirEntryType.DIRECTORY, "d/b.txt": DirEntryType.FILE,
        "d/e": DirEntryType.DIRECTORY, "d/e/c.txt": DirEntryType.FILE,
    }  # fmt: skip
    for path, data in SNAPSHOTTED.items():
        assert await _tree_read(tree, path) == data
    part = b"".join([c async for c in tree.read(rp("a.txt"), ReadOptions(offset=2, length=2))])
    assert part == b"ol"
    assert (await tree.stat(rp("d/e/c.txt"))).stat.size == 5
    with pytest.raises(FileNotFound):
        await tree.stat(rp("d/new.txt"))
    local = await tree.local_file(rp("a.txt"), read_up_to=1024)
    if Capability.LOCAL_PATH in await _caps(volume):
        assert local is not None
        with local:
            assert local.body == b"a-old"

    with pytest.raises(SnapshotNotFound):
        await volume.snapshot_tree(vfid, "nope")
    await volume.create_snapshot(vfid, "s2")
    assert [s.id for s in await volume.list_snapshots(vfid)] == ["s1", "s2"]
    await volume.delete_snapshot(vfid, "s1")
    assert [s.id for s in await volume.list_snapshots(vfid)] == ["s2"]
    with pytest.raises(SnapshotNotFound):
        await volume.delete_snapshot(vfid, "s1")
    assert await read(volume, vfid, "a.txt") == b"a-new!"  # the vfolder is as it was


async def test_snapshots_are_not_in_the_vfolder(volume: AbstractVolume) -> None:
    vfid = await _populated(volume)
    if Capability.SNAPSHOT not in await _caps(volume):
        return
    await volume.create_snapshot(vfid, "s1")
    top = sorted([e.name async for e in volume.scandir(vfid, rp("."))])
    assert top == ["a.txt", "d"]
    listed = [e.path for e in await volume.list_files(vfid, limit=100)]
    assert listed == ["a.txt", "d/b.txt", "d/e/c.txt"]
    for probe in (".snap/s1/a.txt", ".snapshot/s1/a.txt", "d/.snap/s1/b.txt"):
        with pytest.raises((FileNotFound, InvalidPath)):
            await read(volume, vfid, probe)


async def test_restore_into_place_and_into_a_new_directory(volume: AbstractVolume) -> None:
    vfid = await _populated(volume)
    caps = await _caps(volume)
    if Capability.SNAPSHOT not in caps:
        return
    await volume.create_snapshot(vfid, "s1")
    await _change(volume, vfid)

    one = RestoreOptions(relpaths=(rp("d/b.txt"),))
    await volume.restore_snapshot(vfid, "s1", one)
    assert await read(volume, vfid, "d/b.txt") == b"b-old"
    assert await read(volume, vfid, "a.txt") == b"a-new!"  # only what was asked for

    into = RestoreOptions(relpaths=(rp("d"),), into=rp("restored"))
    report = await volume.restore_snapshot(vfid, "s1", into)
    assert report.files == 2
    assert await read(volume, vfid, "restored/d/e/c.txt") == b"c-old"
    assert await read(volume, vfid, "d/new.txt") == b"new"
    with pytest.raises(FileExists):
        await volume.restore_snapshot(vfid, "s1", into)
    with pytest.raises(FileNotFound):
        await volume.restore_snapshot(vfid, "s1", RestoreOptions(relpaths=(rp("top.txt"),)))

    keep = KEEP if Capability.FILE_VERSIONS in caps else None
    await volume.restore_snapshot(vfid, "s1", RestoreOptions(keep=keep))
    assert await _files(volume, vfid) == SNAPSHOTTED  # top.txt, d/new.txt, restored/ gone
    if keep is not None:
        kept = await volume.list_versions(vfid, rp("a.txt"))
        assert kept[0].reason == "restore" and kept[0].size == len(b"a-new!")
        assert [v.size for v in await volume.list_versions(vfid, rp("top.txt"))] == [3]


async def test_a_snapshot_holds_whole_files_while_they_are_written(
    volume: AbstractVolume,
) -> None:
    vfid = await new_vfolder(volume)
    if Capability.SNAPSHOT not in await _caps(volume):
        return
    size = 256 * 1024
    contents = [bytes([65 + i]) * size for i in range(2)]
    await volume.write(vfid, rp("busy.bin"), body(contents[0]))
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            chunks = [contents[n % 2][i : i + 16384] for i in range(0, size, 16384)]
            await volume.write(vfid, rp("busy.bin"), body(*chunks))
            n += 1

    task = asyncio.create_task(writer())
    try:
        for i in range(3):
            await asyncio.sleep(0.05)
            await volume.create_snapshot(vfid, f"w{i}")
    finally:
        stop.set()
        await task
    for i in range(3):
        tree = await volume.snapshot_tree(vfid, f"w{i}")
        assert [e.name for e in await tree.scandir(rp("."))] == ["busy.bin"]  # nothing staged
        assert await _tree_read(tree, "busy.bin") in contents


async def test_snapshot_space_follows_the_flag(volume: AbstractVolume, spec: BackendSpec) -> None:
    vfid = await _populated(volume)
    caps = await _caps(volume)
    if Capability.SNAPSHOT_QUOTA not in caps:
        return
    qsid = vfid.quota_scope_id
    before = await volume.quota_model.describe_quota_scope(qsid)
    assert before is not None
    await volume.create_snapshot(vfid, "s1")
    volume.quota_model.invalidate(vfid)
    after = await volume.quota_model.describe_quota_scope(qsid)
    assert after is not None and after.used_bytes >= before.used_bytes + 15
    assert await settled_usage(volume, vfid, spec, (3, 15)) == (3, 15)  # the vfolder's own


async def test_versions_kept_on_overwrite_move_and_delete(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    if Capability.FILE_VERSIONS not in await _caps(volume):
        await volume.write(vfid, rp("f.txt"), body(b"1"), WriteOptions(keep=KEEP))
        assert await volume.list_versions(vfid, rp("f.txt")) == []
        with pytest.raises(NotSupported):
            await volume.delete_version(vfid, rp("f.txt"), "x")
        return
    options = WriteOptions(checksums=True, keep=KEEP)
    for n in range(4):
        await volume.write(vfid, rp("f.txt"), body(f"v{n}".encode() * (n + 1)), options)
    versions = await volume.list_versions(vfid, rp("f.txt"))
    assert [v.size for v in versions] == [6, 4]  # newest first, at most 2: v0 dropped
    assert versions[0].sha256 == hashlib.sha256(b"v2v2v2").hexdigest()
    assert versions[0].who == "user:alice" and versions[0].reason == "overwrite"
    old = versions[1]
    got = b"".join([c async for c in volume.read_version(vfid, rp("f.txt"), old.id, ReadOptions())])
    assert got == b"v1v1"
    version, local = await volume.open_version(vfid, rp("f.txt"), old.id, read_up_to=100)
    assert version.id == old.id
    if local is not None:
        with local:
            assert local.body == b"v1v1"

    meta = await volume.restore_version(vfid, rp("f.txt"), old.id, KEEP)
    assert await read(volume, vfid, "f.txt") == b"v1v1" and meta.size == 4
    newest = (await volume.list_versions(vfid, rp("f.txt")))[0]
    assert newest.reason == "restore" and newest.size == len(b"v3v3v3v3")
    await volume.delete_version(vfid, rp("f.txt"), newest.id)
    assert newest.id not in [v.id for v in await volume.list_versions(vfid, rp("f.txt"))]
    with pytest.raises(VersionNotFound):
        await volume.delete_version(vfid, rp("f.txt"), newest.id)
    with pytest.raises((VersionNotFound, StorageProxyError)):
        await volume.restore_version(vfid, rp("f.txt"), "0000000000000000-00000000", KEEP)

    await volume.write(vfid, rp("src.txt"), body(b"moving"))
    await volume.move_file(vfid, rp("src.txt"), rp("f.txt"), keep=KEEP)
    assert (await volume.list_versions(vfid, rp("f.txt")))[0].reason == "move"
    await volume.delete_files(vfid, [rp("f.txt")], keep=KEEP)
    gone = await volume.list_versions(vfid, rp("f.txt"))
    assert gone[0].reason == "delete" and gone[0].size == len(b"moving")
    await volume.write(vfid, rp("dir/x/y.txt"), body(b"yy"))
    await volume.delete_files(vfid, [rp("dir")], recursive=True, keep=KEEP)
    assert [v.size for v in await volume.list_versions(vfid, rp("dir/x/y.txt"))] == [2]
    assert [e.name async for e in volume.scandir(vfid, rp("."))] == []  # kept out of sight
    assert await volume.list_files(vfid, limit=10) == []


async def test_versions_need_a_limit(volume: AbstractVolume) -> None:
    """Without ``keep`` (or with a limit of 0) nothing is kept."""
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("f.txt"), body(b"1"))
    await volume.write(vfid, rp("f.txt"), body(b"2"))
    await volume.write(vfid, rp("f.txt"), body(b"3"), WriteOptions(keep=KeepVersions(0)))
    await volume.delete_files(vfid, [rp("f.txt")])
    assert await volume.list_versions(vfid, rp("f.txt")) == []


async def test_version_ids_cannot_name_paths(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("f.txt"), body(b"1"), WriteOptions(keep=KEEP))
    if Capability.FILE_VERSIONS not in await _caps(volume):
        return
    for bad in ("../path", "..", "path", "f.txt", "/etc/passwd"):
        with pytest.raises((VersionNotFound, InvalidPath)):
            await volume.open_version(vfid, RelPath.parse("f.txt"), bad)
