"""The nfs backend on a local directory (no NFS here): mount detection on a fake mounts table,
the attribute-cache retry, sidecar-only file metadata and the threaded usage scan."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import FileNotFound, PluginError
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import Capability, VFolderID, VFolderUsage
from storage_proxy.volumes import filemeta
from storage_proxy.volumes.abc import UploadTarget, VolumeDeps, WriteOptions
from storage_proxy.volumes.mounts import find_mount, parse_mounts
from storage_proxy_nfs import NfsVolume
from storage_proxy_nfs.scan import threaded_scan

MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda1 / ext4 rw,relatime 0 0
filer:/export /mnt/vfroot nfs4 rw,relatime,vers=4.2,rsize=1048576 0 0
filer:/export/deep /mnt/vfroot/deep nfs rw,vers=3 0 0
/dev/sdb1 /mnt/vfroot/deep/local xfs rw 0 0
filer:/sp /mnt/with\\040space nfs4 rw 0 0
"""


def volume_at(path: Path, deps: VolumeDeps, **options: object) -> NfsVolume:
    return NfsVolume("nfs", path, options={"check-mount": False, **options}, deps=deps)


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
async def nfs(tmp_path: Path, volume_deps: VolumeDeps) -> AsyncIterator[NfsVolume]:
    volume = volume_at(tmp_path / "vol", volume_deps, **{"attr-retry-timeout": 1.0})
    await volume.init()
    yield volume
    await volume.shutdown()


@pytest.fixture
async def vfid(nfs: NfsVolume) -> VFolderID:
    vfid = new_vfid()
    await nfs.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await nfs.create_vfolder(vfid)
    return vfid


# -- mount detection -------------------------------------------------------------------------
def test_longest_mount_prefix_wins() -> None:
    entries = parse_mounts(MOUNTS)
    assert find_mount(Path("/mnt/vfroot/a/b"), entries).fstype == "nfs4"  # type: ignore[union-attr]
    deep = find_mount(Path("/mnt/vfroot/deep/x"), entries)
    assert deep is not None and (deep.fstype, deep.source) == ("nfs", "filer:/export/deep")
    assert find_mount(Path("/mnt/vfroot/deep/local/y"), entries).fstype == "xfs"  # type: ignore[union-attr]
    assert find_mount(Path("/mnt/vfrootx"), entries).mount_point == "/"  # type: ignore[union-attr]
    spaced = find_mount(Path("/mnt/with space/v"), entries)
    assert spaced is not None and spaced.mount_point == "/mnt/with space"
    assert "vers=4.2" in find_mount(Path("/mnt/vfroot"), entries).options  # type: ignore[union-attr]


async def test_start_up_checks_the_mount(tmp_path: Path, volume_deps: VolumeDeps) -> None:
    mounts = tmp_path / "mounts"
    root = tmp_path / "export"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nfiler:/e {root} nfs4 rw 0 0\n")
    ok = volume_at(root / "vol", volume_deps, **{"check-mount": True, "mounts-file": str(mounts)})
    await ok.init()
    assert ok.mount_info is not None and ok.mount_info.source == "filer:/e"

    elsewhere = volume_at(
        tmp_path / "local", volume_deps, **{"check-mount": True, "mounts-file": str(mounts)}
    )
    with pytest.raises(PluginError, match="ext4 mount at /, not one of nfs, nfs4"):
        await elsewhere.init()
    assert not (tmp_path / "local").exists()  # nothing is created on the wrong filesystem

    other_type = volume_at(
        root / "vol",
        volume_deps,
        **{"check-mount": True, "mounts-file": str(mounts), "expected-fstypes": ["ceph"]},
    )
    with pytest.raises(PluginError, match="not one of ceph"):
        await other_type.init()


# -- attribute caching -----------------------------------------------------------------------
async def test_existence_checks_retry_briefly(nfs: NfsVolume, vfid: VFolderID) -> None:
    """A file that shows up moments late (another client's create) is still found."""
    late = nfs.vfolder_path(vfid) / "late.txt"
    timer = threading.Timer(0.3, late.write_bytes, args=(b"hi",))
    timer.start()
    try:
        entry = await nfs.stat(vfid, RelPath.parse("late.txt"))
    finally:
        timer.join()
    assert entry.stat.size == 2


async def test_vfolder_created_elsewhere_is_found(nfs: NfsVolume) -> None:
    vfid = new_vfid()
    await nfs.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    timer = threading.Timer(0.3, os.makedirs, args=(nfs.vfolder_path(vfid),))
    timer.start()
    try:
        assert (await nfs.get_usage(vfid)) == VFolderUsage(0, 0)
    finally:
        timer.join()


async def test_a_real_miss_fails_after_the_timeout(nfs: NfsVolume, vfid: VFolderID) -> None:
    started = time.monotonic()
    with pytest.raises(FileNotFound):
        await nfs.stat(vfid, RelPath.parse("never.txt"))
    assert 0.7 <= time.monotonic() - started < 3  # gives up at most one backoff early


# -- metadata and usage ----------------------------------------------------------------------
def test_capabilities_exclude_xattr_and_fast_usage() -> None:
    assert NfsVolume.capabilities == {
        Capability.VFOLDER,
        Capability.QUOTA,
        Capability.LOCAL_PATH,
        Capability.SNAPSHOT,  # copies beside the vfolder, in its scope
        Capability.SNAPSHOT_QUOTA,
        Capability.FILE_VERSIONS,
    }


async def test_checksums_go_to_the_sidecar_never_xattrs(nfs: NfsVolume, vfid: VFolderID) -> None:
    rel = RelPath.parse("d/f.bin")
    meta = await nfs.write(
        vfid, rel, body(b"abc"), WriteOptions(checksums=True, content_type="text/plain")
    )
    assert meta.sha256 == hashlib.sha256(b"abc").hexdigest()
    path = nfs.vfolder_path(vfid) / "d" / "f.bin"
    with pytest.raises(OSError):
        os.getxattr(path, filemeta.XATTR_NAME)  # tmpfs/ext4 have xattrs: still unused
    row = await nfs.deps.books.get_file_meta("nfs", str(vfid), "d/f.bin")
    assert row is not None and row["sha256"] == meta.sha256
    updated = await nfs.update_file_meta(vfid, rel, tags={"k": "v"})
    assert updated.tags == {"k": "v"} and updated.sha256 == meta.sha256
    assert updated.content_type == "text/plain"


async def test_upload_publish_uses_the_sidecar(nfs: NfsVolume, vfid: VFolderID) -> None:
    session = "ab" * 16
    await nfs.upload_prepare(session, UploadTarget(vfid, RelPath.parse("u.bin")))
    async with nfs.upload_hold(session) as held:
        await nfs.upload_append(held, 0, body(b"xyz"))
        await nfs.upload_publish(held, vfid, RelPath.parse("u.bin"), checksums=True)
    meta = await nfs.get_file_meta(vfid, RelPath.parse("u.bin"))
    assert meta.sha256 == hashlib.sha256(b"xyz").hexdigest()


def test_threaded_scan_counts_like_a_walk(tmp_path: Path) -> None:
    expected_files = expected_bytes = 0
    for d in range(20):
        sub = tmp_path / f"d{d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(d):
            (sub / f"f{f}").write_bytes(b"x" * f)
            expected_files += 1
            expected_bytes += f
    # A name like the proxy's staging files counts like any other: a tenant can create it.
    (tmp_path / "d1" / ".x.sp-tmp-0123").write_bytes(b"in flight")
    expected_files, expected_bytes = expected_files + 1, expected_bytes + len(b"in flight")
    usage = threaded_scan(str(tmp_path), 4)
    assert (usage.file_count, usage.used_bytes) == (expected_files, expected_bytes)
    assert usage.dir_count == 40  # d<n> and d<n>/inner, counted apart
    assert threaded_scan(str(tmp_path / "missing"), 4) == VFolderUsage(0, 0)


async def test_usage_is_scanned_in_threads(nfs: NfsVolume, vfid: VFolderID) -> None:
    async def no_process_pool(root: Path) -> VFolderUsage:
        raise AssertionError("the process-pool scanner was used")

    object.__setattr__(nfs.deps, "scanner", type("S", (), {"scan": no_process_pool})())
    await nfs.write(vfid, RelPath.parse("a/b.bin"), body(b"1" * 10))
    await nfs.write(vfid, RelPath.parse("c.bin"), body(b"2" * 5))
    usage = await nfs.get_usage(vfid)
    assert (usage.file_count, usage.used_bytes, usage.dir_count) == (2, 15, 1)
    await asyncio.sleep(0)
