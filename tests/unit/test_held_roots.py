"""Vfolder roots held open between inline reads: reused, let go when any process changes what a
vfolder's path names (a shared counter), after a time in any case, and never served from once
the vfolder is deleted -- by this volume object or another one on the same mount (another
worker process of the node works through exactly the same file)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import VFolderNotFound
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.heldroots import EPOCH_NAME, HeldRoots, roots_changed
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_vfs import VfsVolume


class Missing(Exception):
    pass


def _missing(vfid: VFolderID) -> Exception:
    return Missing(str(vfid))


def _dir(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.mkdir()
    (path / "f.txt").write_text(name)
    return str(path)


def _read(fd: int) -> str:
    inner = os.open("f.txt", os.O_RDONLY, dir_fd=fd)
    try:
        return os.read(inner, 100).decode()
    finally:
        os.close(inner)


def test_a_root_is_opened_once_and_reused(tmp_path: Path) -> None:
    roots = HeldRoots.open(tmp_path)
    assert roots is not None
    vfid, path = new_vfid(), _dir(tmp_path, "a")
    fd = roots.fd(vfid, path, _missing)
    assert roots.fd(vfid, path, _missing) == fd
    assert os.path.samestat(os.fstat(fd), os.stat(path)) and _read(fd) == "a"
    roots.close()


def test_a_change_in_any_process_lets_go_of_every_held_root(tmp_path: Path) -> None:
    here, there = HeldRoots.open(tmp_path), HeldRoots.open(tmp_path)  # two workers, one file
    assert here is not None and there is not None
    vfid, path = new_vfid(), _dir(tmp_path, "a")
    here.fd(vfid, path, _missing)
    os.rename(path, tmp_path / "trashed")  # the vfolder deleted into the trash ...
    roots_changed(there.path)  # ... by the other worker, which says so
    with pytest.raises(Missing):
        here.fd(vfid, path, _missing)
    assert len(here) == 0
    here.close()
    there.close()


def test_without_the_signal_a_root_is_held_no_longer_than_its_time(tmp_path: Path) -> None:
    roots = HeldRoots.open(tmp_path)
    assert roots is not None
    roots._ttl = 0.2  # (another node's change is never signalled here)
    vfid, path = new_vfid(), _dir(tmp_path, "a")
    fd = roots.fd(vfid, path, _missing)
    os.rename(path, tmp_path / "moved")
    assert roots.fd(vfid, path, _missing) == fd  # still held: the bound is the time
    time.sleep(0.25)
    with pytest.raises(Missing):
        roots.fd(vfid, path, _missing)
    roots.close()


def test_at_most_the_limit_is_held_oldest_let_go_first(tmp_path: Path) -> None:
    roots = HeldRoots.open(tmp_path)
    assert roots is not None
    roots._limit = 2
    held = [(new_vfid(), _dir(tmp_path, name)) for name in "abc"]
    fds = [roots.fd(vfid, path, _missing) for vfid, path in held]
    assert len(roots) == 2
    assert roots.fd(*held[2], _missing) == fds[2]  # the newest is still held
    try:  # the oldest was closed (its number free, or reused by something else)
        still = os.path.samestat(os.fstat(fds[0]), os.stat(held[0][1]))
    except OSError:
        still = False
    assert not still
    roots.close()


def test_no_counter_no_held_roots(tmp_path: Path) -> None:
    assert HeldRoots.open(tmp_path / "absent") is None


async def test_an_idle_worker_lets_go_of_its_roots_when_their_time_is_up(tmp_path: Path) -> None:
    roots = HeldRoots.open(tmp_path)
    assert roots is not None
    roots._ttl = 0.2
    vfid, path = new_vfid(), _dir(tmp_path, "a")
    fd = roots.fd(vfid, path, _missing)
    await asyncio.sleep(0.4)  # no read meanwhile: the timer closes it (pins no deleted root)
    assert len(roots) == 0
    try:
        still = os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        still = False
    assert not still
    roots.close()


def test_a_shrunk_counter_is_a_change_not_a_crash(tmp_path: Path) -> None:
    roots = HeldRoots.open(tmp_path)
    assert roots is not None
    vfid, path = new_vfid(), _dir(tmp_path, "a")
    roots.fd(vfid, path, _missing)
    os.truncate(tmp_path / EPOCH_NAME, 0)  # (a mapped counter would fault here: SIGBUS)
    os.rename(path, tmp_path / "gone")
    with pytest.raises(Missing):
        roots.fd(vfid, path, _missing)
    roots_changed(roots.path)  # bumps again from nothing
    assert os.path.getsize(tmp_path / EPOCH_NAME) == 8
    roots.close()


@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory"])
def test_anything_but_a_regular_file_at_the_counter_is_refused(
    tmp_path: Path, planted: str
) -> None:
    counter = tmp_path / EPOCH_NAME
    target = tmp_path / "elsewhere"
    target.write_bytes(b"ABCDEFGHIJKLMNOP")
    if planted == "symlink":
        counter.symlink_to(target)
    elif planted == "fifo":
        os.mkfifo(counter)
    else:
        counter.mkdir()
    before = len(os.listdir("/proc/self/fd"))
    assert HeldRoots.open(tmp_path) is None  # roots are opened per read then
    assert len(os.listdir("/proc/self/fd")) == before  # nothing left open
    roots_changed(str(counter))  # a bump refuses it too (logged), and writes nothing
    assert target.read_bytes() == b"ABCDEFGHIJKLMNOP"


@pytest.fixture
async def two_workers(
    tmp_path: Path, metadata_store: SqliteMetadataStore
) -> AsyncIterator[tuple[VfsVolume, VfsVolume]]:
    volumes = []
    for _ in range(2):
        deps = VolumeDeps(books=MetadataBooks(metadata_store), scanner=TreeScanner(0))
        volume = VfsVolume("vol", tmp_path / "vol", options={}, deps=deps)
        await volume.init()
        volumes.append(volume)
    yield volumes[0], volumes[1]
    for volume in volumes:
        await volume.shutdown()


REL = RelPath.parse("f.txt")


async def _vfolder_with_secret(volume: VfsVolume) -> VFolderID:
    vfid = new_vfid()
    await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await volume.create_vfolder(vfid)
    (volume.vfolder_path(vfid) / "f.txt").write_bytes(b"secret")
    return vfid


async def test_a_deleted_vfolder_is_never_read_through_a_held_root(
    two_workers: tuple[VfsVolume, VfsVolume],
) -> None:
    one, other = two_workers
    vfid = await _vfolder_with_secret(one)
    for volume in (one, other):  # both hold the root now
        local = await volume.local_file(vfid, REL, read_up_to=1024)
        assert local is not None and local.body == b"secret"
        local.close()
    await one.delete_vfolder(vfid)
    for volume in (one, other):
        with pytest.raises(VFolderNotFound):
            await volume.local_file(vfid, REL, read_up_to=1024)
    # created again (same id): the new directory is read, not the trashed one
    await one.create_vfolder(vfid)
    (one.vfolder_path(vfid) / "f.txt").write_bytes(b"fresh")
    local = await other.local_file(vfid, REL, read_up_to=1024)
    assert local is not None and local.body == b"fresh"
    local.close()


async def test_a_delete_after_its_volume_was_shut_down_still_tells_the_others(
    two_workers: tuple[VfsVolume, VfsVolume],
) -> None:
    one, other = two_workers
    vfid = await _vfolder_with_secret(one)
    local = await other.local_file(vfid, REL, read_up_to=1024)
    assert local is not None and local.body == b"secret"
    local.close()
    await one.shutdown()  # (a volume removed at run time while its delete task runs)
    await one.delete_vfolder(vfid)
    with pytest.raises(VFolderNotFound):
        await other.local_file(vfid, REL, read_up_to=1024)
