"""The vfs backend against the volume interface: layout, lifecycle, file ops, data, errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    InvalidPath,
    IsADirectory,
    QuotaScopeExists,
    QuotaScopeNotFound,
    VFolderExists,
    VFolderNotFound,
)
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import Capability, DirEntryType, VFolderID
from storage_proxy.volumes.abc import ReadOptions, WriteOptions
from storage_proxy_vfs import VfsVolume


def rp(s: str) -> RelPath:
    return RelPath.parse(s)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def read_all(volume: VfsVolume, vfid: VFolderID, rel: str, **kw: int) -> bytes:
    return b"".join([c async for c in volume.read(vfid, rp(rel), ReadOptions(**kw))])


async def test_backend_ai_layout(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    h = vfolder.folder_id.hex
    expected = vfs_volume.mount_path / vfolder.quota_scope_id.scope_id.hex / h[:2] / h[2:4] / h[4:]
    assert expected.is_dir()
    assert await vfs_volume.get_vfolder_mount(vfolder) == expected.resolve()


async def test_capabilities(vfs_volume: VfsVolume) -> None:
    caps = await vfs_volume.get_capabilities()
    assert {Capability.VFOLDER, Capability.QUOTA, Capability.LOCAL_PATH} <= caps
    assert Capability.FAST_USAGE not in caps


async def test_create_needs_quota_scope_and_refuses_duplicates(vfs_volume: VfsVolume) -> None:
    vfid = new_vfid()
    with pytest.raises(QuotaScopeNotFound):
        await vfs_volume.create_vfolder(vfid)
    await vfs_volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    with pytest.raises(QuotaScopeExists):
        await vfs_volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await vfs_volume.create_vfolder(vfid, mode=0o750)
    assert (os.stat(vfs_volume.vfolder_path(vfid)).st_mode & 0o777) == 0o750
    with pytest.raises(VFolderExists):
        await vfs_volume.create_vfolder(vfid)


async def test_delete_vfolder_moves_it_to_the_trash(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    await vfs_volume.mkdir(vfolder, rp("a/b"))
    await vfs_volume.write(vfolder, rp("a/b/f.txt"), chunks(b"data"))
    path = vfs_volume.vfolder_path(vfolder)
    await vfs_volume.delete_vfolder(vfolder)
    assert not path.exists()
    assert not path.parent.exists()  # empty hash levels are pruned
    [trashed] = list((vfs_volume.mount_path / ".trash").iterdir())  # purged after trash-grace
    assert (trashed / "a" / "b" / "f.txt").read_bytes() == b"data"
    with pytest.raises(VFolderNotFound):
        await vfs_volume.delete_vfolder(vfolder)


async def test_clone_copies_tree_and_symlinks(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("d/x.bin"), chunks(b"x" * 1000))
    os.symlink("d/x.bin", vfs_volume.vfolder_path(vfolder) / "link")
    dst = new_vfid(vfolder.quota_scope_id)
    await vfs_volume.clone_vfolder(vfolder, dst)
    assert await read_all(vfs_volume, dst, "d/x.bin") == b"x" * 1000
    assert os.readlink(vfs_volume.vfolder_path(dst) / "link") == "d/x.bin"
    with pytest.raises(VFolderExists):
        await vfs_volume.clone_vfolder(vfolder, dst)
    with pytest.raises(VFolderNotFound):
        await vfs_volume.clone_vfolder(new_vfid(), new_vfid())
    leftovers = [p for p in vfs_volume.vfolder_path(dst).parent.iterdir() if ".sp-tmp-" in p.name]
    assert leftovers == []


async def test_usage_counts_files_and_bytes(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("a.bin"), chunks(b"1" * 10))
    await vfs_volume.write(vfolder, rp("sub/deeper/b.bin"), chunks(b"2" * 25))
    usage = await vfs_volume.get_usage(vfolder)
    assert (usage.file_count, usage.used_bytes) == (2, 35)
    assert await vfs_volume.get_used_bytes(vfolder) == 35
    with pytest.raises(VFolderNotFound):
        await vfs_volume.get_usage(new_vfid())
    fs = await vfs_volume.get_fs_usage()
    assert fs.capacity_bytes > 0 and 0 <= fs.used_bytes <= fs.capacity_bytes


async def test_scandir_lists_entries(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("f.txt"), chunks(b"hello"))
    await vfs_volume.mkdir(vfolder, rp("dir"))
    os.symlink("f.txt", vfs_volume.vfolder_path(vfolder) / "ln")
    entries = {e.name: e async for e in vfs_volume.scandir(vfolder, rp("."))}
    assert set(entries) == {"f.txt", "dir", "ln"}
    assert entries["f.txt"].type is DirEntryType.FILE and entries["f.txt"].stat.size == 5
    assert entries["dir"].type is DirEntryType.DIRECTORY
    assert entries["ln"].type is DirEntryType.SYMLINK and entries["ln"].symlink_target == "f.txt"
    with pytest.raises(FileNotFound):
        [e async for e in vfs_volume.scandir(vfolder, rp("missing"))]


async def test_scandir_respects_limit(
    tmp_path: Path, vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    for i in range(20):
        (vfs_volume.vfolder_path(vfolder) / f"f{i}").write_bytes(b"")
    limited = VfsVolume(
        "vol",
        vfs_volume.mount_path,
        deps=vfs_volume.deps.__class__(
            books=vfs_volume.deps.books, scanner=vfs_volume.deps.scanner, scandir_limit=7
        ),
    )
    assert len([e async for e in limited.scandir(vfolder, rp("."))]) == 7


async def test_mkdir_semantics(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.mkdir(vfolder, rp("a/b/c"))
    with pytest.raises(FileExists):
        await vfs_volume.mkdir(vfolder, rp("a/b/c"))
    await vfs_volume.mkdir(vfolder, rp("a/b/c"), exist_ok=True)
    with pytest.raises(FileNotFound):
        await vfs_volume.mkdir(vfolder, rp("x/y"), parents=False)


async def test_move_and_rename(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("a.txt"), chunks(b"A"))
    await vfs_volume.mkdir(vfolder, rp("dir"))
    await vfs_volume.move_file(vfolder, rp("a.txt"), rp("dir/b.txt"))
    assert await read_all(vfs_volume, vfolder, "dir/b.txt") == b"A"
    await vfs_volume.rename_file(vfolder, rp("dir/b.txt"), "c.txt")
    assert await read_all(vfs_volume, vfolder, "dir/c.txt") == b"A"
    with pytest.raises(InvalidPath):
        await vfs_volume.rename_file(vfolder, rp("dir/c.txt"), "../escape.txt")
    with pytest.raises(InvalidPath):
        await vfs_volume.move_file(vfolder, rp("dir"), rp("dir/inside"))
    with pytest.raises(FileNotFound):
        await vfs_volume.move_file(vfolder, rp("nope"), rp("x"))


async def test_delete_files(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("d/f"), chunks(b"x"))
    await vfs_volume.write(vfolder, rp("g"), chunks(b"y"))
    with pytest.raises(DirectoryNotEmpty):
        await vfs_volume.delete_files(vfolder, [rp("d")])
    with pytest.raises(FileNotFound):
        await vfs_volume.delete_files(vfolder, [rp("g"), rp("missing")])
    assert (vfs_volume.vfolder_path(vfolder) / "g").exists()  # nothing deleted on a bad batch
    await vfs_volume.delete_files(vfolder, [rp("d"), rp("g")], recursive=True)
    assert list(vfs_volume.vfolder_path(vfolder).iterdir()) == []


async def test_write_is_atomic_and_read_ranges(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    meta = await vfs_volume.write(vfolder, rp("f.bin"), chunks(b"0123456789", b"abcdef"))
    assert meta.size == 16 and meta.sha256 is None  # checksums only when asked for
    assert await read_all(vfs_volume, vfolder, "f.bin") == b"0123456789abcdef"
    assert await read_all(vfs_volume, vfolder, "f.bin", offset=3, length=4) == b"3456"
    assert await read_all(vfs_volume, vfolder, "f.bin", offset=10, chunk_size=2) == b"abcdef"
    with pytest.raises(FileExists):
        await vfs_volume.write(vfolder, rp("f.bin"), chunks(b"x"), WriteOptions(overwrite=False))
    with pytest.raises(IsADirectory):
        await vfs_volume.write(vfolder, rp("."), chunks(b"x"))


async def test_failed_write_leaves_nothing(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("keep.bin"), chunks(b"original"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial data"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await vfs_volume.write(vfolder, rp("keep.bin"), broken())
    with pytest.raises(ConnectionResetError):
        await vfs_volume.write(vfolder, rp("new.bin"), broken())
    names = sorted(p.name for p in vfs_volume.vfolder_path(vfolder).iterdir())
    assert names == ["keep.bin"]
    assert await read_all(vfs_volume, vfolder, "keep.bin") == b"original"


async def test_local_file_and_stat(vfs_volume: VfsVolume, vfolder: VFolderID) -> None:
    await vfs_volume.write(vfolder, rp("f"), chunks(b"abc"))
    local = await vfs_volume.local_file(vfolder, rp("f"), read_up_to=10)
    assert local is not None
    with local:
        assert local.body == b"abc" and os.pread(local.fd, 10, 0) == b"abc"
    st = await vfs_volume.stat(vfolder, rp("f"))
    assert st.stat.size == 3 and st.type is DirEntryType.FILE
    root = await vfs_volume.local_file(vfolder, rp("."))
    assert root is not None
    with root:
        assert root.is_dir
        assert os.path.samestat(os.fstat(root.fd), os.stat(vfs_volume.vfolder_path(vfolder)))
    with pytest.raises(IsADirectory):
        await read_all(vfs_volume, vfolder, ".")
    with pytest.raises(FileNotFound):
        await vfs_volume.stat(vfolder, rp("nope"))


async def test_operations_on_missing_vfolder(vfs_volume: VfsVolume) -> None:
    ghost = new_vfid()
    with pytest.raises(VFolderNotFound):
        await vfs_volume.mkdir(ghost, rp("a"))
    with pytest.raises(VFolderNotFound):
        await vfs_volume.get_vfolder_mount(ghost)
    with pytest.raises(VFolderNotFound):
        await vfs_volume.write(ghost, rp("a"), chunks(b"x"))


async def test_checksums_and_attributes_stored_with_the_file(
    vfs_volume: VfsVolume, vfolder: VFolderID
) -> None:
    import hashlib

    body = b"checksummed " * 1000
    meta = await vfs_volume.write(
        vfolder,
        rp("c.txt"),
        chunks(body[:5000], body[5000:]),
        WriteOptions(checksums=True, content_type="text/plain", tags={"team": "ml"}),
    )
    assert meta.sha256 == hashlib.sha256(body).hexdigest()
    assert meta.etag == f'"{hashlib.md5(body).hexdigest()}"'
    assert (meta.content_type, meta.tags, meta.size) == ("text/plain", {"team": "ml"}, len(body))
    again = await vfs_volume.get_file_meta(vfolder, rp("c.txt"))
    assert again == meta
    updated = await vfs_volume.update_file_meta(vfolder, rp("c.txt"), tags={"team": "infra"})
    assert updated.tags == {"team": "infra"} and updated.sha256 == meta.sha256
    assert updated.content_type == "text/plain"
    # Rewritten behind the proxy's back: the stored checksum is no longer claimed.
    path = vfs_volume.vfolder_path(vfolder) / "c.txt"
    path.write_bytes(b"changed")
    stale = await vfs_volume.get_file_meta(vfolder, rp("c.txt"))
    assert stale.sha256 is None and stale.size == 7


async def test_mkdir_exist_ok_does_not_follow_a_link(
    vfs_volume: VfsVolume, vfolder: VFolderID, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    os.symlink(outside, vfs_volume.vfolder_path(vfolder) / "probe")
    with pytest.raises(FileExists):  # no answer about what the link points at
        await vfs_volume.mkdir(vfolder, rp("probe"), exist_ok=True)
    await vfs_volume.mkdir(vfolder, rp("real"))
    await vfs_volume.mkdir(vfolder, rp("real"), exist_ok=True)


def test_relpath_built_directly_is_validated_too() -> None:
    for parts in [("..",), ("a", ".."), ("",), (".",), ("a/b",), ("a\x00",)]:
        with pytest.raises(InvalidPath):
            RelPath(parts)
    assert str(RelPath(("a", "b"))) == "a/b"
