"""Each periodic job on a real tree: a vfs volume in tmp, driven through the manager API."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from api_fixtures import Daemon
from jobs_support import folder_path, make_vfolder, run_job

from helpers import new_vfid
from storage_proxy.core.paths import RelPath
from storage_proxy.services.bgtasks import ProgressReporter
from storage_proxy.services.jobs import trash, usage
from storage_proxy.volumes.abc import WriteOptions

DAY = 86400


async def test_usage_scan_keeps_the_latest_figures(daemon: Daemon) -> None:
    a = await make_vfolder(daemon, {"one": b"1" * 1000, "d/two": b"2" * 500})
    b = await make_vfolder(daemon)
    result = await run_job(daemon, "usage-scan")
    figures = {f["vfid"]: f for f in result["vfolders"]}
    assert figures[str(a)]["file_count"] == 2 and figures[str(a)]["used_bytes"] >= 1500
    assert figures[str(b)]["file_count"] == 0
    latest = await usage.latest_usage(daemon.ctx.jobs.deps)
    assert latest[("vol1", str(a))]["used_bytes"] == figures[str(a)]["used_bytes"]


async def test_orphan_scan_reports_both_sides_and_deletes_nothing(daemon: Daemon) -> None:
    kept = await make_vfolder(daemon, {"f": b"x"})
    stray = new_vfid()
    stray_dir = folder_path(daemon, stray)
    stray_dir.mkdir(parents=True)
    ghost = new_vfid()
    await daemon.ctx.metadata.register_vfolder("vol1", str(ghost), str(ghost.quota_scope_id))
    mount = daemon.ctx.volumes.get("vol1").mount_path
    for hidden in (".trash/x", ".uploads", ".dataproxy/k"):
        (mount / hidden).mkdir(parents=True, exist_ok=True)
    (mount / "README").write_text("not a vfolder")
    await run_job(daemon, "orphan-scan")
    status, body = await daemon.call("GET", "/jobs/orphans")
    assert status == 200
    report = body["result"]["volumes"]["vol1"]
    assert report["unregistered_dirs"] == ["/".join(stray.relative_parts)]
    assert report["missing_dirs"] == [str(ghost)]
    assert report["unexpected_entries"] == ["README"]
    assert body["result"]["orphan_count"] == 3
    assert stray_dir.is_dir() and folder_path(daemon, kept).is_dir()


async def test_trash_is_purged_after_the_grace_period(daemon: Daemon) -> None:
    vfid = await make_vfolder(daemon, {"f": b"x"})
    mount = daemon.ctx.volumes.get("vol1").mount_path
    entry = mount / ".trash" / f"{vfid.quota_scope_id.pathname}-{vfid.folder_id.hex}-1"
    (entry / "sub").mkdir(parents=True)
    (entry / "sub" / "file").write_bytes(b"deleted data")
    staged = mount / ".uploads" / ("ab" * 16)  # staged bytes no session refers to
    staged.parent.mkdir(exist_ok=True)
    staged.write_bytes(b"partial")
    os.utime(staged, (time.time() - 3 * DAY, time.time() - 3 * DAY))
    deps = daemon.ctx.jobs.deps
    reporter = ProgressReporter(daemon.ctx.bgtasks, "none")
    early = await trash.run(deps, reporter)  # within trash-grace (1d): kept
    assert early["purged"]["vol1"] == [] and early["kept"]["vol1"] == 1 and entry.is_dir()
    assert early["stray_uploads_removed"]["vol1"] == ["ab" * 16] and not staged.exists()
    late = await trash.run(deps, reporter, now=time.time() + 2 * DAY)
    assert late["purged"]["vol1"] == [f".trash/{entry.name}"] and not entry.exists()
    result = await run_job(daemon, "trash-purge")  # also as a job through the API
    assert result["purged"] == {"vol1": []}


async def test_retention_deletes_old_files_and_dry_run_only_reports(daemon: Daemon) -> None:
    old = time.time() - 10 * DAY
    a = await make_vfolder(daemon, {"old.txt": b"o" * 10, "d/old2": b"o", "new.txt": b"n"})
    b = await make_vfolder(daemon, {"old.txt": b"o"})
    for vfid, rel in ((a, "old.txt"), (a, "d/old2"), (b, "old.txt")):
        os.utime(folder_path(daemon, vfid) / rel, (old, old))
    deps = daemon.ctx.jobs.deps
    deps.settings = replace(deps.settings, retention={"vol1": 7})
    status, _ = await daemon.call("PUT", "/folder/retention", volume="vol1", vfid=str(b), days=0)
    assert status == 204  # b is exempt
    deps.settings = replace(deps.settings, retention_dry_run=True)
    dry = await run_job(daemon, "retention")
    assert dry["dry_run"] and [v["vfid"] for v in dry["vfolders"]] == [str(a)]
    assert sorted(dry["vfolders"][0]["files"]) == ["d/old2", "old.txt"]
    assert (folder_path(daemon, a) / "old.txt").exists()
    deps.settings = replace(deps.settings, retention_dry_run=False)
    real = await run_job(daemon, "retention")
    assert real["vfolders"][0]["file_count"] == 2
    assert not (folder_path(daemon, a) / "old.txt").exists()
    assert (folder_path(daemon, a) / "new.txt").exists()
    assert (folder_path(daemon, b) / "old.txt").exists()


async def test_scrub_reports_a_file_whose_bytes_changed(daemon: Daemon) -> None:
    vfid = await make_vfolder(daemon)
    volume = daemon.ctx.volumes.get("vol1")
    for name in ("good.bin", "bad.bin"):
        await volume.write(
            vfid,
            RelPath.parse(name),
            _chunks(b"payload-" + name.encode()),
            WriteOptions(checksums=True),
        )
    (folder_path(daemon, vfid) / "plain").write_bytes(b"no checksum")
    bad = folder_path(daemon, vfid) / "bad.bin"
    st = bad.stat()
    with open(bad, "r+b") as f:  # flip bytes in place, then restore size and mtime: bit rot
        f.write(b"PAYLOAD-")
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = await run_job(daemon, "scrub")
    assert result["checked_files"] == 2 and result["files_without_checksum"] == 1
    assert [c["path"] for c in result["corrupted"]] == ["bad.bin"]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
