"""Two workers running the snapshot-policies job never take the same slot twice: not through the
job's lease (runs started together, runs one after the other within a slot), and not even when
two runs race without any lease (the slot's one name: the volume refuses the second)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from api_fixtures import Daemon

from helpers import new_vfid
from storage_proxy.core.snapshot_policy import is_policy_snapshot, slot_name
from storage_proxy.services.bgtasks import BackgroundTaskService, ProgressReporter
from storage_proxy.services.jobs import JobRunner, JobSpec, snapshots
from storage_proxy.services.jobs.common import JobDeps

T0 = 20_833 * 86400
EVERY = 10


def _worker(d: Daemon, name: str, clock: list[float]) -> JobRunner:
    bgtasks = BackgroundTaskService(d.ctx.metadata, "node", heartbeat=0)
    bgtasks.owner = f"node/{name}"
    deps = replace(d.ctx.jobs.deps, bgtasks=bgtasks)

    async def job(deps: JobDeps, reporter: ProgressReporter) -> Any:
        return await snapshots.run(deps, reporter, now=clock[0])

    return JobRunner(deps, [JobSpec(snapshots.NAME, EVERY, job)])


async def _takes(d: Daemon, vfid: str) -> list[str]:
    """The policy snapshots the audit says were taken (successfully), once its writer caught up."""
    await asyncio.sleep(0.2)
    return [
        line["snapshot_id"]
        for line in d.ctx.services.audit.recent("vol1", vfid, 1000)
        if line["operation"] == "snapshot.create" and line["result"] == "ok"
    ]


@pytest.mark.hostile
async def test_two_workers_never_take_a_slot_twice(daemon: Daemon) -> None:
    d = daemon
    vfid = new_vfid()
    status, _ = await d.call("POST", "/folder/create", volume="vol1", vfid=str(vfid))
    assert status == 204
    root = d.ctx.volumes.get("vol1").vfolder_path(vfid)  # type: ignore[attr-defined]
    (root / "data.bin").write_bytes(b"d" * 4096)
    status, _ = await d.call(
        "PUT", "/folder/snapshot/policy", volume="vol1", vfid=str(vfid), every="10s",
        keep_last=100,
    )  # fmt: skip
    assert status == 204
    clock = [float(T0)]
    workers = [_worker(d, "w1", clock), _worker(d, "w2", clock)]
    slots = 6
    for slot in range(slots):
        for tick in (1, 4, 8):  # three rounds in each slot, both workers at once
            clock[0] = T0 + slot * EVERY + tick
            started = await asyncio.gather(*(w.try_run(snapshots.NAME) for w in workers))
            for worker, task_id in zip(workers, started, strict=True):
                if task_id is not None:
                    record = await worker.deps.bgtasks.wait(task_id)
                    assert record.status == "done", record
    # and with no lease at all: two runs at once in a new slot
    clock[0] = T0 + slots * EVERY + 2
    reporters = [ProgressReporter(w.deps.bgtasks, "none") for w in workers]
    await asyncio.gather(
        *(snapshots.run(w.deps, r, now=clock[0]) for w, r in zip(workers, reporters, strict=True))
    )

    expected = [slot_name(T0 + k * EVERY) for k in range(slots + 1)]
    status, body = await d.call("GET", "/folder/snapshots", volume="vol1", vfid=str(vfid))
    names = sorted(
        s["snapshot_id"] for s in body["snapshots"] if is_policy_snapshot(s["snapshot_id"])
    )
    assert names == expected
    taken = await _takes(d, str(vfid))
    assert sorted(taken) == expected  # each slot taken exactly once
