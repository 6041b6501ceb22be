"""The rest of the volume interface, on every backend: mounts and paths, usage figures, file
metadata, staged uploads, key-ordered listing, local files, quota models and per-vfolder limits,
the maintenance hooks the jobs call, and the registry kept by the services around a volume.

Together with ``test_contract.py`` every method of :class:`AbstractVolume` and
:class:`QuotaModel` is exercised here (``test_every_method_is_exercised`` checks that list).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contract.spec import BackendSpec
from contract.test_contract import body, new_vfolder, read, rp
from storage_proxy.core.errors import (
    Conflict,
    FileNotFound,
    IsADirectory,
    QuotaExceeded,
    UnsupportedOperation,
    UploadNotFound,
    UploadOffsetMismatch,
    VFolderNotFound,
)
from storage_proxy.core.files import WholeFile
from storage_proxy.core.types import (
    Capability,
    FileMeta,
    QuotaConfig,
    QuotaScopeID,
    QuotaScopeType,
    VFolderID,
)
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.audit import AuditLog
from storage_proxy.services.bgtasks import BackgroundTaskService
from storage_proxy.services.usage import UsageService
from storage_proxy.services.vfolders import VFolderService
from storage_proxy.volumes.abc import AbstractVolume, QuotaModel, UploadTarget, WriteOptions
from storage_proxy.volumes.registry import VolumeRegistry

#: Every method of the interface and the contract case(s) exercising it.
EXERCISED = {
    "init": "the fixture", "shutdown": "the fixture", "get_capabilities": "capabilities",
    "create_vfolder": "lifecycle", "delete_vfolder": "lifecycle", "vfolder_exists": "lifecycle",
    "clone_vfolder": "clone", "clone_progress": "clone_progress",
    "get_vfolder_mount": "mount_and_paths", "check_path": "mount_and_paths",
    "get_usage": "usage", "get_used_bytes": "usage_figures", "get_fs_usage": "usage_figures",
    "set_vfolder_quota": "vfolder_limit", "scandir": "file_operations", "stat": "file_operations",
    "list_files": "key_order", "mkdir": "file_operations", "move_file": "file_operations",
    "rename_file": "file_operations", "delete_files": "file_operations",
    "read": "file_operations", "write": "file_operations", "write_whole": "whole_files",
    "get_file_meta": "file_metadata",
    "update_file_meta": "file_metadata", "local_file": "local_file", "open_raw_read": "raw_reads",
    "upload_prepare": "staged_upload", "upload_size": "staged_upload",
    "upload_hold": "staged_upload", "upload_append": "staged_upload",
    "upload_publish": "staged_upload", "upload_discard": "staged_upload",
    "upload_concat": "joined_uploads", "performance_metric": "performance_metric",
    "purge_trash": "maintenance", "staged_uploads": "maintenance", "reap_staging": "maintenance",
    "walk_files": "maintenance", "file_digest": "maintenance", "expire_files": "maintenance",
    "stored_vfolders": "maintenance", "run_blocking": "maintenance",
    # snapshots and versions (test_contract_snapshots.py)
    "create_snapshot": "snapshots", "list_snapshots": "snapshots",
    "delete_snapshot": "snapshots", "snapshot_tree": "snapshots",
    "restore_snapshot": "restore", "list_versions": "versions", "open_version": "versions",
    "read_version": "versions", "restore_version": "versions", "delete_version": "versions",
    # the quota model
    "create_quota_scope": "quota_model", "quota_scope_exists": "quota_model",
    "describe_quota_scope": "quota_model", "update_quota_scope": "quota_model",
    "unset_quota": "quota_model", "delete_quota_scope": "quota_model",
    "remaining_bytes": "quota_model", "headroom": "quota_model", "buckets": "quota_model",
    "reservation": "quota_model", "record_written": "quota_model", "invalidate": "quota_model",
    "usage_after_write": "quota_model",
}  # fmt: skip


def test_every_method_is_exercised() -> None:
    public = {
        name
        for cls in (AbstractVolume, QuotaModel)
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    assert public - set(EXERCISED) == set(), "a new interface method needs a contract case"


async def test_mount_and_paths(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    mount = await volume.get_vfolder_mount(vfid)
    assert mount.parts[-3:] == tuple(vfid.relative_parts)[-3:]
    await volume.mkdir(vfid, rp("a/b"))
    sub = await volume.get_vfolder_mount(vfid, rp("a/b"))
    assert sub == mount / "a" / "b"
    await volume.check_path(vfid, rp("not/yet/there.txt"))  # missing directories are fine
    missing = VFolderID(vfid.quota_scope_id, uuid.uuid4())
    with pytest.raises(VFolderNotFound):
        await volume.check_path(missing, rp("x"))
    with pytest.raises(VFolderNotFound):
        await volume.get_vfolder_mount(missing)


async def test_usage_figures(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("f.bin"), body(b"u" * 4096))
    volume.quota_model.invalidate(vfid)
    usage = await volume.get_usage(vfid)
    assert await volume.get_used_bytes(vfid) == usage.used_bytes
    fs = await volume.get_fs_usage()
    assert fs.capacity_bytes >= fs.used_bytes >= 0


async def test_file_metadata(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    options = WriteOptions(checksums=True, content_type="text/csv", tags={"k": "v"})
    written = await volume.write(vfid, rp("d/t.csv"), body(b"a,b\n", b"1,2\n"), options)
    meta = await volume.get_file_meta(vfid, rp("d/t.csv"))
    assert meta == written
    assert meta.size == 8 and meta.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert meta.md5 == hashlib.md5(b"a,b\n1,2\n").hexdigest()
    assert (meta.content_type, meta.tags) == ("text/csv", {"k": "v"})
    updated = await volume.update_file_meta(vfid, rp("d/t.csv"), tags={"x": "y"})
    assert updated.tags == {"x": "y"} and updated.sha256 == meta.sha256
    assert updated.content_type == "text/csv"
    with pytest.raises(FileNotFound):
        await volume.get_file_meta(vfid, rp("nope"))
    with pytest.raises(IsADirectory):
        await volume.get_file_meta(vfid, rp("d"))


async def test_whole_files(volume: AbstractVolume, spec: BackendSpec) -> None:
    """A group of small files stored at once: each as ``write`` stores it, each refusal its own
    outcome, the same name twice ending with the later body; a group that does not fit the
    quota stores what fits, file by file."""
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("kept.txt"), body(b"old"))
    opts = WriteOptions(checksums=True, content_type="text/plain")
    files = [
        WholeFile(rp("g/a.txt"), b"alpha", opts),
        WholeFile(rp("kept.txt"), b"new", dataclasses.replace(opts, overwrite=False)),
        WholeFile(rp("g/a.txt"), b"second", opts),
        WholeFile(rp("g/empty"), b"", opts),
    ]
    out = await volume.write_whole(vfid, files)
    assert [type(o).__name__ for o in out] == ["FileMeta", "FileExists", "FileMeta", "FileMeta"]
    assert await read(volume, vfid, "g/a.txt") == b"second"
    assert await read(volume, vfid, "kept.txt") == b"old"
    assert await read(volume, vfid, "g/empty") == b""
    second = out[2]
    assert isinstance(second, FileMeta)
    assert second.sha256 == hashlib.sha256(b"second").hexdigest() and second.size == 6
    assert second.content_type == "text/plain"
    assert await volume.get_file_meta(vfid, rp("g/a.txt")) == second
    if spec.usage_settle_seconds:
        return  # the storage counts lazily (CephFS rstats): small files pass its quota at first
    qsid = vfid.quota_scope_id
    await volume.quota_model.update_quota_scope(qsid, QuotaConfig(64 * 1024))
    try:
        chunk = b"q" * (24 * 1024)
        out = await volume.write_whole(vfid, [WholeFile(rp(f"q/{i}"), chunk) for i in range(4)])
        stored = [isinstance(o, FileMeta) for o in out]
        assert stored[0] and not stored[-1], out  # what fits is stored, not nothing
        assert all(isinstance(o, QuotaExceeded) for o in out if not isinstance(o, FileMeta))
        names = sorted([e.name async for e in volume.scandir(vfid, rp("q"))])
        assert names == [str(i) for i, ok in enumerate(stored) if ok]
    finally:
        await volume.quota_model.unset_quota(qsid)


async def _appended(volume: AbstractVolume, sid: str, offset: int, *parts: bytes) -> int:
    async with volume.upload_hold(sid) as held:
        return await volume.upload_append(held, offset, body(*parts))


async def test_staged_upload(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    sid = uuid.uuid4().hex
    await volume.upload_prepare(sid, UploadTarget(vfid, rp("up/f.bin"), "application/x-test"))
    assert await volume.upload_size(sid) == 0
    assert await _appended(volume, sid, 0, b"abc", b"def") == 6
    with pytest.raises(UploadOffsetMismatch):
        await _appended(volume, sid, 3, b"zzz")
    async with volume.upload_hold(sid):
        with pytest.raises(Conflict):  # one writer at a time
            async with volume.upload_hold(sid):
                pass
    assert await _appended(volume, sid, 6, b"ghi") == 9
    assert [e async for e in volume.scandir(vfid, rp("."))] == []  # nothing visible yet
    async with volume.upload_hold(sid) as held:
        await volume.upload_publish(
            held, vfid, rp("up/f.bin"), checksums=True, content_type="application/x-test"
        )
    assert await read(volume, vfid, "up/f.bin") == b"abcdefghi"
    meta = await volume.get_file_meta(vfid, rp("up/f.bin"))
    assert meta.sha256 == hashlib.sha256(b"abcdefghi").hexdigest()
    with pytest.raises(UploadNotFound):
        await volume.upload_size(sid)
    other = uuid.uuid4().hex
    await volume.upload_prepare(other, UploadTarget(vfid, rp("gone.bin")))
    await _appended(volume, other, 0, b"partial")
    await volume.upload_discard(other)
    await volume.upload_discard(other)  # a missing session is no error
    with pytest.raises(UploadNotFound):
        await volume.upload_size(other)


async def test_joined_uploads(volume: AbstractVolume) -> None:
    """tus concatenation's storage step: complete parts appended to a held upload, in order."""
    vfid = await new_vfolder(volume)
    final, first, second = (uuid.uuid4().hex for _ in range(3))
    for sid in (final, first, second):
        await volume.upload_prepare(sid, UploadTarget(vfid, rp("j/joined.bin")))
    assert await _appended(volume, first, 0, b"first-", b"part") == 10
    assert await _appended(volume, second, 0, b"+second") == 7
    async with (
        volume.upload_hold(final) as held,
        volume.upload_hold(first) as one,
        volume.upload_hold(second) as two,
    ):
        assert await volume.upload_concat(held, [one, two]) == 17
        await volume.upload_publish(held, vfid, rp("j/joined.bin"), checksums=True)
    assert await read(volume, vfid, "j/joined.bin") == b"first-part+second"
    meta = await volume.get_file_meta(vfid, rp("j/joined.bin"))
    assert meta.sha256 == hashlib.sha256(b"first-part+second").hexdigest()
    assert await volume.upload_size(first) == 10  # the parts are the caller's to discard
    for sid in (first, second):
        await volume.upload_discard(sid)
    assert [e.name async for e in volume.scandir(vfid, rp("j"))] == ["joined.bin"]


async def test_performance_metric(volume: AbstractVolume) -> None:
    """Live I/O figures where the backend reads them; else the clear refusal Backend.AI gives."""
    try:
        metric = await volume.performance_metric()
    except UnsupportedOperation:
        return
    figures = dataclasses.asdict(metric)
    assert set(figures) >= {"iops_read", "iops_write", "io_bytes_read", "io_bytes_write"}
    assert all(value >= 0 for value in figures.values())


async def test_key_order(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    names = ["a-b", "a/c", "a0", "b/x/y", "b/x0", "c"]
    for name in reversed(names):
        await volume.write(vfid, rp(name), body(name.encode()))
    listed = await volume.list_files(vfid, limit=100)
    assert [e.path for e in listed] == names  # byte order of the full keys
    assert [e.path for e in await volume.list_files(vfid, start_after="a/c", limit=2)] == [
        "a0",
        "b/x/y",
    ]
    assert [e.path for e in await volume.list_files(vfid, prefix="b/", limit=100)] == [
        "b/x/y",
        "b/x0",
    ]
    assert await volume.list_files(vfid, prefix="zz", limit=10) == []
    with pytest.raises(FileNotFound):  # a prefix into a directory that is not there
        await volume.list_files(vfid, prefix="zz/", limit=10)


async def test_local_file(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    await volume.write(vfid, rp("small.txt"), body(b"tiny"))
    local = await volume.local_file(vfid, rp("small.txt"), read_up_to=1024)
    if Capability.LOCAL_PATH not in await volume.get_capabilities():
        assert local is None
        return
    assert local is not None
    with local:
        assert local.body == b"tiny" and local.stat.st_size == 4 and not local.is_dir


def _recv_exactly(sock: socket.socket, nbytes: int) -> bytes:
    sock.setblocking(True)
    got = bytearray()
    while len(got) < nbytes:
        chunk = sock.recv(min(nbytes - len(got), 1 << 20))
        if not chunk:
            break
        got += chunk
    return bytes(got)


async def test_raw_reads(volume: AbstractVolume, spec: BackendSpec) -> None:
    """A read handed over on a socket carries exactly the asked range (the relay splices it to
    the client unseen); a backend that cannot, or a file that is not there, gives None."""
    vfid = await new_vfolder(volume)
    data = os.urandom((3 << 20) + 5)
    await volume.write(vfid, rp("r/f.bin"), body(data))
    raw = await volume.open_raw_read(vfid, rp("r/f.bin"), 1000, 2 << 20)
    if not spec.raw_reads:
        assert raw is None
        return
    assert raw is not None and raw.length == 2 << 20
    with raw:
        rest = await asyncio.to_thread(_recv_exactly, raw.sock, raw.length - len(raw.head) + 1)
    assert raw.head + rest == data[1000 : 1000 + (2 << 20)]
    assert await volume.open_raw_read(vfid, rp("r/missing.bin"), 0, 10) is None
    assert await volume.open_raw_read(vfid, rp("r/f.bin"), len(data), 10) is None  # past the end


async def test_clone_progress(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    progress = await volume.clone_progress(vfid)  # no clone running
    assert progress is None or progress == 0


async def test_quota_model(volume: AbstractVolume) -> None:
    model = volume.quota_model
    qsid = QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid4())
    assert not await model.quota_scope_exists(qsid)
    assert await model.describe_quota_scope(qsid) is None
    await model.create_quota_scope(qsid, QuotaConfig(1 << 20))
    assert await model.quota_scope_exists(qsid)
    remaining = await model.remaining_bytes(qsid)
    assert remaining is None or remaining <= 1 << 20
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)
    headroom = await model.headroom(vfid)
    assert headroom is None or headroom <= 1 << 20
    assert all(b.limit > 0 for b in await model.buckets(vfid))
    async with model.reservation(vfid) as res:
        await res.reserve(1000)
        await res.consume(1000)
        if headroom is not None:  # counted by the proxy: more than is left is refused now
            with pytest.raises(QuotaExceeded):
                await res.reserve(2 << 20)
    await model.record_written(vfid, 0)
    seen = await model.usage_after_write(qsid)  # what quota alerts compare after a write
    assert seen is None or (seen.limit_bytes == 1 << 20 and seen.used_bytes >= 0), seen
    model.invalidate(vfid)
    await model.update_quota_scope(qsid, QuotaConfig(2 << 20))
    described = await model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes == 2 << 20
    await model.unset_quota(qsid)
    await volume.delete_vfolder(vfid)
    await model.delete_quota_scope(qsid)
    gone = await model.describe_quota_scope(qsid)  # removed, or (POSIX) left without a limit
    assert gone is None or gone.limit_bytes is None


async def test_vfolder_limit(volume: AbstractVolume, store: SqliteMetadataStore) -> None:
    """A per-vfolder limit (kept in the registry, applied natively where storage nests quotas)
    refuses a declared write that cannot fit."""
    vfid = await new_vfolder(volume)
    await store.register_vfolder(volume.name, str(vfid), str(vfid.quota_scope_id))
    await store.update_vfolder(volume.name, str(vfid), limit_bytes=64 * 1024)
    await volume.set_vfolder_quota(vfid, 64 * 1024)
    with pytest.raises(QuotaExceeded):
        await volume.write(
            vfid, rp("big.bin"), body(b"b" * 1024), WriteOptions(size_hint=128 * 1024)
        )
    await volume.write(vfid, rp("fits.bin"), body(b"f" * 1024))
    await volume.set_vfolder_quota(vfid, None)


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_maintenance(volume: AbstractVolume) -> None:
    vfid = await new_vfolder(volume)
    files = {"a.bin": b"a" * 10, "d/b.bin": b"b" * 20}
    for name, data in files.items():
        await volume.write(vfid, rp(name), _stream(data))
    walked = {f.path: f.size async for f in volume.walk_files(vfid)}
    assert walked == {name: len(data) for name, data in files.items()}
    assert await volume.file_digest(vfid, rp("d/b.bin")) == (
        hashlib.sha256(b"b" * 20).hexdigest(),
        20,
    )
    future = time.time() + 3600
    dry = await volume.expire_files(vfid, future, dry_run=True)
    assert (sorted(dry.paths), dry.count, dry.bytes) == (sorted(files), 2, 30)
    assert await read(volume, vfid, "a.bin") == files["a.bin"]
    none_old = await volume.expire_files(vfid, time.time() - 3600, dry_run=False)
    assert none_old.count == 0
    stored = await volume.stored_vfolders()
    assert stored is not None and tuple(vfid.relative_parts) in stored.vfolders

    sid = uuid.uuid4().hex
    await volume.upload_prepare(sid, UploadTarget(vfid, rp("later.bin")))
    assert sid in await volume.staged_uploads(future)
    assert sid not in await volume.staged_uploads(time.time() - 3600)
    assert isinstance(await volume.reap_staging(time.time() - 3600), list)
    await volume.upload_discard(sid)

    expired = await volume.expire_files(vfid, future, dry_run=False)
    assert expired.count == 2 and [f async for f in volume.walk_files(vfid)] == []
    await volume.delete_vfolder(vfid)
    kept = await volume.purge_trash(time.time() - 3600)  # within the grace time
    assert kept.purged == []
    purged = await volume.purge_trash(future)
    assert len(purged.purged) >= 1
    stored = await volume.stored_vfolders()
    assert stored is not None and tuple(vfid.relative_parts) not in stored.vfolders
    assert await volume.run_blocking(sum, [1, 2]) == 3


async def test_registry_kept_by_the_services(
    volume: AbstractVolume, store: SqliteMetadataStore
) -> None:
    """Volumes only store; the vfolder service registers what it creates or clones and
    unregisters what it deletes, on every backend alike."""
    volumes = VolumeRegistry()
    volumes._volumes[volume.name] = volume
    bgtasks = BackgroundTaskService(store, "node")
    await bgtasks.start()
    try:
        service = VFolderService(
            volumes, store, bgtasks, UsageService(volumes, None, None), AuditLog()
        )
        vfid = VFolderID(QuotaScopeID(QuotaScopeType.USER, uuid.uuid4()), uuid.uuid4())
        await service.create(volume.name, vfid, owner="alice")
        record = await store.get_vfolder(volume.name, str(vfid))
        assert record is not None and record.owner == "alice"
        clone = VFolderID(vfid.quota_scope_id, uuid.uuid4())
        await service.wait(await service.start_clone(volume.name, vfid, clone))
        assert await store.get_vfolder(volume.name, str(clone)) is not None
        await service.wait(await service.start_delete(volume.name, vfid))
        assert await store.get_vfolder(volume.name, str(vfid)) is None
        assert not await volume.vfolder_exists(vfid) and await volume.vfolder_exists(clone)
    finally:
        await bgtasks.stop()


async def test_the_fixture_storage_is_fresh(volume: AbstractVolume, tmp_path: Path) -> None:
    stored = await volume.stored_vfolders()
    assert stored is not None and stored.vfolders == frozenset()
    await asyncio.sleep(0)
