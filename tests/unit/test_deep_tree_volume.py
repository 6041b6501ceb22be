"""A vfs volume with a tenant's too-deep tree: snapshots and clones of it are refused (422) and
leave nothing behind, and another clone's progress never walks it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import nested_dirs as chain
from helpers import new_vfid, remove_deep_trees
from storage_proxy.core.errors import TreeTooDeep
from storage_proxy.core.types import VFolderID
from storage_proxy.volumes import fstree
from storage_proxy.volumes.posix_fs import STAGING_MARK, UPLOADS_DIR
from storage_proxy_vfs import VfsVolume


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """pytest removes old temporary directories recursively: deep trees go here, at any depth."""
    yield
    remove_deep_trees(tmp_path)


@pytest.fixture
def shallow_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(fstree, "_max_depth", 30)
    return 30


def leftovers(area: Path) -> list[str]:
    return [p.name for p in area.iterdir() if STAGING_MARK in p.name] if area.exists() else []


async def test_snapshot_of_a_too_deep_tree_is_refused_and_left_nowhere(
    vfs_volume: VfsVolume, vfolder: VFolderID, shallow_limit: int
) -> None:
    chain(vfs_volume.vfolder_path(vfolder), shallow_limit + 5, payload=b"x")
    with pytest.raises(TreeTooDeep) as e:
        await vfs_volume.create_snapshot(vfolder, "deep")
    assert (e.value.status, e.value.code) == (422, "tree-too-deep")
    assert leftovers(vfs_volume.snapshots_area(vfolder)) == []
    assert await vfs_volume.list_snapshots(vfolder) == []


async def test_clone_of_a_too_deep_tree_is_refused_and_left_nowhere(
    vfs_volume: VfsVolume, vfolder: VFolderID, shallow_limit: int
) -> None:
    chain(vfs_volume.vfolder_path(vfolder), shallow_limit + 5, payload=b"x")
    dst = new_vfid(vfolder.quota_scope_id)
    with pytest.raises(TreeTooDeep):
        await vfs_volume.clone_vfolder(vfolder, dst)
    assert not await vfs_volume.vfolder_exists(dst)
    assert leftovers(vfs_volume.clone_staging_parent(dst)) == []


async def test_clone_progress_never_walks_other_stagings(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    """A staging holding a 3000-level tree (another tenant's clone) beside this clone."""
    other = vfs_volume.mount_path / UPLOADS_DIR / f"{STAGING_MARK}other"
    other.mkdir(parents=True)
    chain(other, 3000, payload=b"x" * 10)
    dst = new_vfid(vfolder.quota_scope_id)
    assert await vfs_volume.clone_progress(dst) == 0
    (vfs_volume.vfolder_path(vfolder) / "f").write_bytes(b"y" * 100)
    await vfs_volume.clone_vfolder(vfolder, dst)
    assert (vfs_volume.vfolder_path(dst) / "f").read_bytes() == b"y" * 100
    assert await vfs_volume.clone_progress(dst) == 0  # over: nothing running
    assert os.path.isdir(other)
