"""The periodic jobs on an s3 volume, on the real S3 server: a deleted vfolder waits in the trash
and is purged after the grace time; stray staged uploads go; scrub re-hashes objects; retention
deletes old objects (dry run first); the orphan scan compares markers with the registry."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import pytest
from api_fixtures import Daemon
from jobs.jobs_support import run_job, wait_done

from helpers import new_vfid
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID
from storage_proxy.services.bgtasks import ProgressReporter
from storage_proxy.services.jobs import retention, trash
from storage_proxy.volumes.abc import WriteOptions
from storage_proxy_s3 import S3Volume

DAY = 86400
Start = Callable[..., AbstractAsyncContextManager[Daemon]]


@pytest.fixture
async def daemon(start_daemon: Start) -> AsyncIterator[Daemon]:
    async with start_daemon("vol1") as daemon:
        yield daemon


def s3vol(daemon: Daemon) -> S3Volume:
    volume = daemon.ctx.volumes.get("s3vol")
    assert isinstance(volume, S3Volume)
    return volume


def keys_below(raw_s3: Any, volume: S3Volume, prefix: str) -> list[str]:
    found = raw_s3.list_objects_v2(Bucket=volume.conn.bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"][len(prefix) :] for o in found)


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def s3_vfolder(daemon: Daemon, files: dict[str, bytes]) -> VFolderID:
    vfid = new_vfid()
    status, body = await daemon.call("POST", "/folder/create", volume="s3vol", vfid=str(vfid))
    assert status == 204, body
    for rel, data in files.items():
        await s3vol(daemon).write(vfid, RelPath.parse(rel), one(data), WriteOptions(checksums=True))
    return vfid


def reporter(daemon: Daemon) -> ProgressReporter:
    return ProgressReporter(daemon.ctx.bgtasks, "none")


async def test_a_deleted_vfolder_waits_in_the_trash_then_is_purged(
    daemon: Daemon, raw_s3: Any
) -> None:
    volume = s3vol(daemon)
    vfid = await s3_vfolder(daemon, {"a.txt": b"A", "d/b.bin": b"B" * 100})
    status, body = await daemon.call("POST", "/folder/delete", volume="s3vol", vfid=str(vfid))
    assert status == 202, body  # 26.09: started; done below
    assert (await wait_done(daemon, body["bgtask_id"]))["status"] == "done"
    assert not await volume.vfolder_exists(vfid)
    assert keys_below(raw_s3, volume, volume.vfolder_prefix(vfid)) == []
    status, scope = await daemon.call(
        "GET", "/quota-scope", volume="s3vol", qsid=str(vfid.quota_scope_id)
    )
    assert status == 200 and scope["used_bytes"] == 0  # the trash is not the scope's
    trashed = keys_below(raw_s3, volume, volume.trash_prefix())
    [entry] = {k.split("/", 1)[0] for k in trashed}
    assert entry.startswith(f"{vfid.quota_scope_id.pathname}-{vfid.folder_id.hex}-")
    assert [k.split("/", 1)[1] for k in trashed] == ["", "a.txt", "d/b.bin"]  # marker first

    deps = daemon.ctx.jobs.deps
    early = await trash.run(deps, reporter(daemon))
    assert early["purged"]["s3vol"] == [] and early["kept"]["s3vol"] == 1
    late = await trash.run(deps, reporter(daemon), now=time.time() + 2 * DAY)
    assert late["purged"]["s3vol"] == [f".trash/{entry}/"]
    assert keys_below(raw_s3, volume, volume.trash_prefix()) == []


async def test_stray_staged_uploads_are_removed(daemon: Daemon) -> None:
    staged = s3vol(daemon).staging.directory / ("cd" * 16)  # no session refers to it
    staged.write_bytes(b"partial")
    old = time.time() - 3 * DAY
    os.utime(staged, (old, old))
    result = await run_job(daemon, "trash-purge")
    assert result["stray_uploads_removed"]["s3vol"] == ["cd" * 16] and not staged.exists()


async def test_scrub_reports_an_object_that_does_not_match_its_checksum(daemon: Daemon) -> None:
    volume = s3vol(daemon)
    vfid = await s3_vfolder(daemon, {"good.bin": b"good", "bad.bin": b"bad"})
    await volume.write(vfid, RelPath.parse("plain"), one(b"no checksum"))
    books = volume.deps.books
    record = await books.get_file_meta("s3vol", str(vfid), "bad.bin")
    assert record is not None
    # the record still belongs to this very object (same ETag) but names other bytes: the
    # object changed under a checksum that was right — what scrub is for
    await books.put_file_meta("s3vol", str(vfid), "bad.bin", {**record, "sha256": "0" * 64})
    result = await run_job(daemon, "scrub")
    assert result["checked_files"] == 2 and result["files_without_checksum"] == 1
    assert [(c["volume"], c["path"]) for c in result["corrupted"]] == [("s3vol", "bad.bin")]


async def test_retention_deletes_old_objects_and_dry_run_only_reports(
    daemon: Daemon, raw_s3: Any
) -> None:
    volume = s3vol(daemon)
    a = await s3_vfolder(daemon, {"x.txt": b"x", "d/y.txt": b"yy"})
    b = await s3_vfolder(daemon, {"z.txt": b"z"})
    status, _ = await daemon.call("PUT", "/folder/retention", volume="s3vol", vfid=str(b), days=0)
    assert status == 204  # b is exempt
    deps = daemon.ctx.jobs.deps
    deps.settings = replace(deps.settings, retention={"s3vol": 7})
    later = time.time() + 10 * DAY  # S3 sets LastModified itself: move the clock instead
    deps.settings = replace(deps.settings, retention_dry_run=True)
    dry = await retention.run(deps, reporter(daemon), now=later)
    assert [(v["vfid"], sorted(v["files"])) for v in dry["vfolders"]] == [
        (str(a), ["d/y.txt", "x.txt"])
    ]
    assert keys_below(raw_s3, volume, volume.vfolder_prefix(a)) == ["", "d/y.txt", "x.txt"]
    deps.settings = replace(deps.settings, retention_dry_run=False)
    real = await retention.run(deps, reporter(daemon), now=later)
    assert real["vfolders"][0]["file_count"] == 2 and real["vfolders"][0]["bytes"] == 3
    assert keys_below(raw_s3, volume, volume.vfolder_prefix(a)) == [""]  # the marker stays
    assert keys_below(raw_s3, volume, volume.vfolder_prefix(b)) == ["", "z.txt"]


async def test_orphan_scan_compares_markers_with_the_registry(daemon: Daemon, raw_s3: Any) -> None:
    volume = s3vol(daemon)
    kept = await s3_vfolder(daemon, {"f": b"x"})
    stray = new_vfid()  # stored, never registered
    raw_s3.put_object(Bucket=volume.conn.bucket, Key=volume.scope_marker(stray.quota_scope_id))
    raw_s3.put_object(Bucket=volume.conn.bucket, Key=volume.vfolder_prefix(stray))
    ghost = new_vfid()  # registered, never stored
    await daemon.ctx.metadata.register_vfolder("s3vol", str(ghost), str(ghost.quota_scope_id))
    raw_s3.put_object(Bucket=volume.conn.bucket, Key=volume.key("README"), Body=b"not one")
    await run_job(daemon, "orphan-scan")
    status, body = await daemon.call("GET", "/jobs/orphans")
    assert status == 200
    report = body["result"]["volumes"]["s3vol"]
    assert report["unregistered_dirs"] == ["/".join(stray.relative_parts)]
    assert report["missing_dirs"] == [str(ghost)]
    assert report["unexpected_entries"] == ["README"]
    assert await volume.vfolder_exists(stray) and await volume.vfolder_exists(kept)
