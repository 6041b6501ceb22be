"""The snapshot-policies job on a vfs volume: it takes the slot's snapshot, prunes by the rules
(never a manual snapshot), applies a quota scope's policy where a vfolder has none, audits each
take and prune, and leaves the counts in the snapshot gauges.  The clock is the job's ``now``."""

from __future__ import annotations

import asyncio
from typing import Any

from api_fixtures import Daemon
from jobs_support import make_vfolder, run_job

from storage_proxy.core.snapshot_policy import slot_name
from storage_proxy.core.types import VFolderID
from storage_proxy.services.bgtasks import ProgressReporter
from storage_proxy.services.jobs import snapshots

DAY = 86400
T0 = 20_833 * DAY  # a UTC midnight (2027-01-15)


async def listed(d: Daemon, vfid: VFolderID) -> list[str]:
    status, body = await d.call("GET", "/folder/snapshots", volume="vol1", vfid=str(vfid))
    assert status == 200, body
    return [s["snapshot_id"] for s in body["snapshots"]]


async def run_at(d: Daemon, now: float) -> dict[str, Any]:
    reporter = ProgressReporter(d.ctx.bgtasks, "none")
    return await snapshots.run(d.ctx.jobs.deps, reporter, now=now)


async def audited(d: Daemon, vfid: VFolderID, op: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        while True:
            lines = [
                line
                for line in d.ctx.services.audit.recent("vol1", str(vfid), 500)
                if line["operation"] == op and line["result"] == "ok"
            ]
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.02)


async def test_the_job_takes_each_slot_once_and_prunes_only_its_own(daemon: Daemon) -> None:
    d = daemon
    vfid = await make_vfolder(d, {"f.txt": b"x" * 100})
    status, _ = await d.call("POST", "/folder/snapshot", volume="vol1", vfid=str(vfid), name="mine")
    assert status == 201
    status, body = await d.call(
        "PUT", "/folder/snapshot/policy", volume="vol1", vfid=str(vfid), every="10s", keep_last=2
    )
    assert status == 204, body

    for i in range(5):  # five slots, two runs in each
        first = await run_at(d, T0 + i * 10 + 1)
        again = await run_at(d, T0 + i * 10 + 9)
        assert first["vfolders"][0]["taken"] == slot_name(T0 + i * 10)
        assert again["vfolders"] == []  # the slot has its snapshot
    autos = [slot_name(T0 + 30), slot_name(T0 + 40)]
    assert sorted(await listed(d, vfid)) == sorted(["mine", *autos])

    taken = await audited(d, vfid, "snapshot.create", 6)  # "mine" and five of the policy
    assert sum(line["principal"] == "job:snapshot-policies" for line in taken) == 5
    pruned = await audited(d, vfid, "snapshot.delete", 3)
    assert {line["snapshot_id"] for line in pruned} == {slot_name(T0 + k * 10) for k in range(3)}

    # cleared: nothing more is taken or pruned, the policy's snapshots stay
    status, _ = await d.call("DELETE", "/folder/snapshot/policy", volume="vol1", vfid=str(vfid))
    assert status == 204
    assert (await run_at(d, T0 + 100))["vfolders"] == []
    assert sorted(await listed(d, vfid)) == sorted(["mine", *autos])


async def test_keep_daily_and_a_quota_scopes_policy(daemon: Daemon) -> None:
    d = daemon
    vfid = await make_vfolder(d, {"f": b"1"})
    qsid = str(vfid.quota_scope_id)
    status, body = await d.call(
        "PUT", "/folder/snapshot/policy", volume="vol1", qsid=qsid, every="6h", keep_daily=2
    )
    assert status == 204, body
    status, view = await d.call("GET", "/folder/snapshot/policy", volume="vol1", vfid=str(vfid))
    assert status == 200 and view["source"] == "quota-scope" and view["policy"] is None
    assert view["effective"] == {"every": 6 * 3600, "keep_last": 0, "keep_daily": 2}

    for hours in range(0, 72, 6):  # three days, four slots a day
        await run_at(d, T0 + hours * 3600 + 5)
    slots = [T0 + h * 3600 for h in range(0, 72, 6)]
    newest_of_day: dict[int, int] = {}
    for slot in slots:
        newest_of_day[slot // DAY] = max(slot, newest_of_day.get(slot // DAY, 0))
    expected = sorted(slot_name(s) for s in newest_of_day.values())[-2:]
    assert sorted(await listed(d, vfid)) == expected

    # the vfolder's own policy wins over the scope's
    status, _ = await d.call(
        "PUT", "/folder/snapshot/policy", volume="vol1", vfid=str(vfid), every="1h", keep_last=1
    )
    assert status == 204
    result = await run_at(d, T0 + 80 * 3600 + 5)
    assert result["vfolders"][0]["taken"] == slot_name(T0 + 80 * 3600)
    assert await listed(d, vfid) == [slot_name(T0 + 80 * 3600)]


async def test_the_job_counts_snapshots_into_the_gauges(daemon: Daemon) -> None:
    d = daemon
    empty = await run_at(d, T0)  # a volume without vfolders is counted too (as zeros)
    assert empty["volumes"] == {"vol1": {"policy": 0, "manual": 0, "bytes": 0}}
    assert (
        'storage_proxy_snapshot_bytes{volume="vol1"} 0.0'
        in d.ctx.services.metrics.render().decode()
    )
    a = await make_vfolder(d, {"f": b"x" * 1000})
    b = await make_vfolder(d, {"g": b"y" * 10})
    for vfid, name in ((a, "one"), (b, "two"), (b, "three")):
        status, _ = await d.call(
            "POST", "/folder/snapshot", volume="vol1", vfid=str(vfid), name=name
        )
        assert status == 201
    status, _ = await d.call(
        "PUT", "/folder/snapshot/policy", volume="vol1", vfid=str(a), every="1d", keep_last=3
    )
    assert status == 204
    result = await run_job(d, snapshots.NAME)  # through the runner, with the real clock
    assert result["volumes"]["vol1"] == {"policy": 1, "manual": 3, "bytes": 2 * 1000 + 2 * 10}
    text = d.ctx.services.metrics.render().decode()
    assert 'storage_proxy_snapshots{origin="policy",volume="vol1"} 1.0' in text
    assert 'storage_proxy_snapshots{origin="manual",volume="vol1"} 3.0' in text
    assert 'storage_proxy_snapshot_bytes{volume="vol1"} 2020.0' in text
