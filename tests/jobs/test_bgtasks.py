"""Clone and delete as background tasks: ids, progress, SSE, 409 while busy, persistence."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from api_fixtures import Daemon
from jobs_support import folder_path, make_vfolder, wait_done

from helpers import new_vfid
from storage_proxy.core.records import BgTaskRecord
from storage_proxy.services.bgtasks import BackgroundTaskService, ProgressReporter


async def test_clone_in_background_reports_progress_to_completion(daemon: Daemon) -> None:
    src = await make_vfolder(daemon, {"a.bin": b"a" * 5000, "d/b.bin": b"b" * 3000})
    dst = new_vfid()
    status, body = await daemon.call(
        "POST",
        "/folder/clone",
        src_volume="vol1",
        src_vfid=str(src),
        dst_vfid=str(dst),
        background=True,
    )
    assert status == 200 and set(body) == {"bgtask_id"}  # 26.09: a clone answers 200 at once
    done = await wait_done(daemon, body["bgtask_id"])
    assert done["status"] == "done" and done["kind"] == "vfolder-clone"
    assert done["total_progress"] and done["current_progress"] == done["total_progress"]
    assert done["result"]["dst_vfid"] == str(dst)
    assert (folder_path(daemon, dst) / "d" / "b.bin").read_bytes() == b"b" * 3000


async def test_delete_in_background_and_default_answer_is_202(daemon: Daemon) -> None:
    vfid = await make_vfolder(daemon, {"x": b"x"})
    status, body = await daemon.call(
        "POST", "/folder/delete", volume="vol1", vfid=str(vfid), background=True
    )
    assert status == 202
    done = await wait_done(daemon, body["bgtask_id"])
    assert (done["status"], done["current_progress"], done["total_progress"]) == ("done", 1, 1)
    assert not folder_path(daemon, vfid).exists()
    other = await make_vfolder(daemon)
    resp = await daemon.manager.post("/folder/delete", json={"volume": "vol1", "vfid": str(other)})
    # Backend.AI 26.09: started when answered (23.09's 204 when done: tests/unit/test_manager_api)
    assert resp.status == 202
    started = await resp.json()
    assert started["bgtask_id"] == resp.headers["X-BgTask-ID"]
    assert (await wait_done(daemon, started["bgtask_id"]))["status"] == "done"


async def test_sse_stream_delivers_progress_events(daemon: Daemon) -> None:
    release = asyncio.Event()

    async def steps(reporter: ProgressReporter) -> str:
        for i in range(1, 4):
            await release.wait()
            await reporter.update(i, 3, f"step {i}", force=True)
            await asyncio.sleep(0.05)
        return "ok"

    task_id = await daemon.ctx.bgtasks.spawn("test-steps", steps)
    resp = await daemon.manager.get(f"/bgtask/{task_id}/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    release.set()
    events = _parse_sse(await resp.text())
    names = [name for name, _ in events]
    assert names[-2:] == ["bgtask_done", "server_close"]
    progress = [data["current_progress"] for name, data in events if name == "bgtask_updated"]
    assert {1, 2} <= set(progress) and progress == sorted(progress)
    assert events[-2][1]["result"] == "ok" and events[-2][1]["current_progress"] == 3


def _parse_sse(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields["event"], json.loads(fields.get("data") or "null")))
    return out


async def test_writes_to_a_vfolder_being_deleted_or_cloned_get_409(daemon: Daemon) -> None:
    volume = daemon.ctx.volumes.get("vol1")
    gate = asyncio.Event()
    real_delete, real_clone = volume.delete_vfolder, volume.clone_vfolder

    async def slow_delete(vfid: Any) -> None:
        await gate.wait()
        await real_delete(vfid)

    async def slow_clone(src: Any, dst: Any) -> None:
        await gate.wait()
        await real_clone(src, dst)

    volume.delete_vfolder = slow_delete  # type: ignore[method-assign]
    volume.clone_vfolder = slow_clone  # type: ignore[method-assign]
    doomed = await make_vfolder(daemon, {"f": b"1"})
    src = await make_vfolder(daemon, {"f": b"1"})
    dst = new_vfid()
    _, deleting = await daemon.call(
        "POST", "/folder/delete", volume="vol1", vfid=str(doomed), background=True
    )
    _, cloning = await daemon.call(
        "POST",
        "/folder/clone",
        src_volume="vol1",
        src_vfid=str(src),
        dst_vfid=str(dst),
        background=True,
    )
    for vfid, what in ((doomed, "deleting"), (src, "cloning"), (dst, "cloning")):
        for path, extra in (
            ("/folder/file/mkdir", {"relpath": "new"}),
            ("/folder/file/delete", {"relpaths": ["f"]}),
            ("/folder/file/upload", {"relpath": "u", "size": 1}),
        ):
            status, body = await daemon.call("POST", path, volume="vol1", vfid=str(vfid), **extra)
            assert status == 409 and body["code"] == "vfolder-busy", (path, body)
            assert body["vfolder_status"] == what
    status, body = await daemon.call("POST", "/folder/delete", volume="vol1", vfid=str(src))
    assert status == 409 and body["code"] == "vfolder-busy"
    gate.set()
    assert (await wait_done(daemon, deleting["bgtask_id"]))["status"] == "done"
    assert (await wait_done(daemon, cloning["bgtask_id"]))["status"] == "done"
    status, _ = await daemon.call(
        "POST", "/folder/file/mkdir", volume="vol1", vfid=str(src), relpath="new"
    )
    assert status == 200


async def test_cancel_and_shutdown(daemon: Daemon) -> None:
    async def forever(reporter: ProgressReporter) -> None:
        await asyncio.sleep(3600)

    service = daemon.ctx.bgtasks
    cancelled = await service.spawn("test-forever", forever)
    status, body = await daemon.call("DELETE", f"/bgtask/{cancelled}")
    assert status == 200 and body["status"] == "cancelled"
    interrupted = await service.spawn("test-forever", forever)
    await asyncio.sleep(0.05)
    await service.stop()
    assert (await service.get(interrupted)).status == "interrupted"
    status, body = await daemon.call("GET", "/bgtask/0123")
    assert status == 404 and body["code"] == "bgtask-not-found"


async def test_state_survives_a_restart_and_dead_runners_are_interrupted(daemon: Daemon) -> None:
    metadata = daemon.ctx.metadata
    finished = await daemon.ctx.bgtasks.spawn("test-quick", _quick)
    await wait_done(daemon, finished)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()  # its pid now belongs to no one
    now = time.time()
    crashed = BgTaskRecord(
        id="c" * 32,
        kind="vfolder-delete",
        status="running",
        owner=f"{daemon.ctx.node_id}/{proc.pid}",
        created_at=now,
        updated_at=now,
    )
    await metadata.create_bgtask(crashed)
    await metadata.claim_vfolder_status("vol1", "user:x/1", "deleting", crashed.id)
    assert await metadata.get_vfolder_status("vol1", "user:x/1") is not None
    restarted = BackgroundTaskService(metadata, daemon.ctx.node_id, heartbeat=0)
    await restarted.start()
    assert (await restarted.get(finished)).status == "done"
    record = await restarted.get(crashed.id)
    assert record.status == "interrupted" and record.error["code"] == "interrupted"
    assert await metadata.get_vfolder_status("vol1", "user:x/1") is None
    await restarted.stop()


async def _quick(reporter: ProgressReporter) -> dict[str, int]:
    await reporter.update(1, 1)
    return {"answer": 42}
