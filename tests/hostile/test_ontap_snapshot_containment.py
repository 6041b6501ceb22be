"""NetApp native snapshots are snapshots of the whole ONTAP volume: every vfolder of every scope
is in each of them.  A vfolder's snapshot must still show only that vfolder's files -- whatever
links the tenant planted before it was taken, whatever ids she asks for, whichever vfolder
shares her folder id --, a restore must write only into her vfolder, and no user path may reach
``.snapshot``.  Driven against the ONTAP emulator, whose snapshots are real copies of the tree.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends.ontap_emulator import Emulator, start

from contract.backend_netapp import volume_options
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import (
    FileNotFound,
    InvalidParameter,
    InvalidPath,
    SnapshotNotFound,
    StorageProxyError,
)
from storage_proxy.core.snapshots import RestoreOptions
from storage_proxy.core.types import DirEntryType, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy.volumes.snapshots import SnapshotTree
from storage_proxy_netapp import NetAppVolume

SECRET = b"B-SECRET"


@pytest.fixture
async def ontap(tmp_path: Path) -> AsyncIterator[tuple[NetAppVolume, Emulator]]:
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    emulator = Emulator(nfs)
    runner, endpoint = await start(emulator)
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    deps = VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    volume = NetAppVolume("na", nfs, options=volume_options(emulator, endpoint), deps=deps)
    await volume.init()
    try:
        yield volume, emulator
    finally:
        await volume.shutdown()
        await store.close()
        await runner.cleanup()


async def _all(tree: SnapshotTree) -> dict[str, DirEntryType]:
    return {e.path: e.type for e in await tree.scandir(rp("."), recursive=True)}


async def _leaks(tree: SnapshotTree, path: str) -> bytes | None:
    """The bytes a read through ``path`` returns, or None when it is refused."""
    try:
        return b"".join([c async for c in tree.read(rp(path))])
    except (StorageProxyError, OSError):
        return None


async def _victims(volume: NetAppVolume) -> tuple[VFolderID, VFolderID, VFolderID]:
    """Mallory's vfolder A, and B (same scope) and C (another scope) holding secrets."""
    a = await new_vfolder(volume)
    b = await new_vfolder(volume, a.quota_scope_id)
    c = await new_vfolder(volume)
    await volume.write(a, rp("mine.txt"), body(b"mine"))
    for other in (b, c):
        await volume.write(other, rp("secret.txt"), body(SECRET))
        await volume.write(other, rp("d/deep.txt"), body(SECRET))
    return a, b, c


async def test_a_snapshot_shows_only_its_vfolder_whatever_links_were_planted(
    ontap: tuple[NetAppVolume, Emulator],
) -> None:
    volume, emulator = ontap
    a, b, c = await _victims(volume)
    a_dir, b_dir, c_dir = (volume.vfolder_path(v) for v in (a, b, c))
    snap_root = volume.mount_path / ".snapshot"
    name = f"sp_{a.folder_id.hex}_s"
    b_in_snap = snap_root / name / b_dir.relative_to(volume.mount_path)
    links = {
        "abs_b": str(b_dir),
        "abs_c_file": str(c_dir / "secret.txt"),
        "rel_up": os.path.relpath(b_dir, a_dir),
        "rel_snap_b": os.path.relpath(b_in_snap, a_dir),
        "abs_snapdir": str(snap_root),
    }
    for link, target in links.items():
        os.symlink(target, a_dir / link)
    await volume.create_snapshot(a, "s")
    assert [s["name"] for s in emulator.snapshots.values()] == [name]
    assert (b_in_snap / "secret.txt").exists()  # the volume snapshot holds B

    tree = await volume.snapshot_tree(a, "s")
    listed = await _all(tree)
    assert set(listed) == {"mine.txt", *links}  # the links themselves, nothing below them
    for link in links:
        for below in ("", "/secret.txt", "/d/deep.txt"):
            assert await _leaks(tree, link + below) in (None, b"")
    for bad in (".snapshot", f".snapshot/{name}/x", "d/.snapshot"):
        with pytest.raises((InvalidPath, FileNotFound)):
            await tree.stat(rp(bad))
    for bad in ("../secret.txt", "..", "/secret.txt"):
        with pytest.raises(InvalidPath):
            await tree.stat(rp(bad))


async def test_another_vfolder_cannot_name_the_snapshot(
    ontap: tuple[NetAppVolume, Emulator],
) -> None:
    volume, _ = ontap
    a, b, c = await _victims(volume)
    # the same folder id in another scope, made before the snapshot: inside the volume
    # snapshot there is a directory at its path, but the snapshot is not its own
    twin = VFolderID(QuotaScopeID(QuotaScopeType.USER, uuid.uuid4()), a.folder_id)
    await volume.quota_model.create_quota_scope(twin.quota_scope_id, None)
    await volume.create_vfolder(twin)
    await volume.create_snapshot(a, "s")
    for other in (b, c, twin):
        assert await volume.list_snapshots(other) == []
        with pytest.raises(SnapshotNotFound):
            await volume.snapshot_tree(other, "s")
        with pytest.raises(SnapshotNotFound):
            await volume.restore_snapshot(other, "s", RestoreOptions())
        with pytest.raises(SnapshotNotFound):
            await volume.delete_snapshot(other, "s")
    for bad in ("*", "s*", "../s", "a/b", ".snapshot", "", "x" * 65):
        with pytest.raises(InvalidParameter):
            await volume.snapshot_tree(a, bad)
        with pytest.raises(InvalidParameter):
            await volume.create_snapshot(a, bad)
    assert [s.id for s in await volume.list_snapshots(a)] == ["s"]


async def test_restore_writes_only_into_its_vfolder(
    ontap: tuple[NetAppVolume, Emulator],
) -> None:
    volume, _ = ontap
    a, b, c = await _victims(volume)
    await volume.create_snapshot(a, "s")
    await volume.write(a, rp("mine.txt"), body(b"changed"))
    await volume.write(a, rp("later.txt"), body(b"later"))
    for other in (b, c):
        await volume.write(other, rp("secret.txt"), body(b"B-NEWER"))
        await volume.write(other, rp("after.txt"), body(b"after"))

    await volume.restore_snapshot(a, "s", RestoreOptions())
    assert await read(volume, a, "mine.txt") == b"mine"
    with pytest.raises(FileNotFound):
        await read(volume, a, "later.txt")
    for other in (b, c):  # untouched: the volume was not rolled back
        assert await read(volume, other, "secret.txt") == b"B-NEWER"
        assert await read(volume, other, "after.txt") == b"after"
        assert await read(volume, other, "d/deep.txt") == SECRET


async def test_user_paths_never_reach_snapshot_dir(ontap: tuple[NetAppVolume, Emulator]) -> None:
    volume, _ = ontap
    a, _, _ = await _victims(volume)
    await volume.create_snapshot(a, "s")
    name = f"sp_{a.folder_id.hex}_s"
    os.symlink(str(volume.mount_path / ".snapshot"), volume.vfolder_path(a) / "snaps")
    for probe in (".snapshot", f".snapshot/{name}", "d/.snapshot/x", f"snaps/{name}"):
        with pytest.raises((FileNotFound, InvalidPath)):
            await read(volume, a, probe)
        with pytest.raises((FileNotFound, InvalidPath, StorageProxyError)):
            await volume.write(a, rp(f"{probe}/planted.txt"), body(b"x"))
    names = {e.name async for e in volume.scandir(a, rp("."))}
    assert ".snapshot" not in names
    planted = [p for p in volume.vfolder_path(a).rglob("*") if ".snapshot" in p.parts]
    assert planted == []  # nor made below a new directory (d/.snapshot/x was, once)


async def test_deleting_a_vfolder_deletes_only_its_snapshots(
    ontap: tuple[NetAppVolume, Emulator],
) -> None:
    volume, emulator = ontap
    a, b, _ = await _victims(volume)
    await volume.create_snapshot(a, "s")
    await volume.create_snapshot(b, "s")
    await volume.create_snapshot(b, "t")
    await volume.delete_vfolder(a)
    left = sorted(s["name"] for s in emulator.snapshots.values())
    assert left == [f"sp_{b.folder_id.hex}_s", f"sp_{b.folder_id.hex}_t"]
    assert not (volume.mount_path / ".snapshot" / f"sp_{a.folder_id.hex}_s").exists()
    assert [s.id for s in await volume.list_snapshots(b)] == ["s", "t"]
