"""Snapshot policies: take each vfolder's due snapshot and prune what its policy no longer keeps.

On every volume that takes snapshots, for every registered vfolder with a policy (its own, else
its quota scope's): if the snapshot of the current slot (``auto-<slot start>``) is not there, it
is taken; then the policy's snapshots its rules do not keep are deleted (never a manual one).
The job runs under its lease, so one worker of one node does this at a time; and as a slot's
snapshot has one name, a second taker finds it there (or is refused it by the volume) and takes
nothing.  Takes and deletions go through :class:`SnapshotService`, so each is an audit line
(principal ``job:snapshot-policies``) and counts against the quota as a manual one does.
Vfolders busy with a clone, delete or restore are skipped.

On the way it counts every vfolder's snapshots (policy-made and manual) and the bytes the
storage says they hold, per volume: the job's result and the ``on_totals`` gauges.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ...core import caller
from ...core.errors import SnapshotExists, StorageProxyError
from ...core.snapshot_policy import SnapshotPolicy, is_policy_snapshot, slot_name, to_prune
from ...core.snapshots import SnapshotInfo
from ...core.types import Capability, VFolderID
from ..access import Actor
from ..bgtasks import ProgressReporter
from ..snapshot_policies import effective_policy
from ..snapshots import SnapshotService, Started
from .common import JobDeps, is_busy, registered_vfolders

log = logging.getLogger(__name__)

NAME = "snapshot-policies"
JOB_CALLER = caller.Caller("daemon", f"job:{NAME}")
_ACTOR = Actor.manager()


@dataclass(slots=True)
class SnapshotTotals:
    """A volume's snapshots as the job last counted them."""

    policy: int = 0  # taken by a policy
    manual: int = 0
    bytes: int = 0  # of the snapshots whose size the storage knows

    def add(self, snapshots: list[SnapshotInfo]) -> None:
        for s in snapshots:
            if is_policy_snapshot(s.id):
                self.policy += 1
            else:
                self.manual += 1
            self.bytes += s.size or 0

    def to_json(self) -> dict[str, int]:
        return {"policy": self.policy, "manual": self.manual, "bytes": self.bytes}


async def run(
    deps: JobDeps, reporter: ProgressReporter, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    with caller.acting_as(JOB_CALLER):
        totals, plan = await _plan(deps)
        await reporter.update(0, len(plan), "applying snapshot policies", force=True)
        report: list[dict[str, Any]] = []
        for name, vfid, policy in plan:
            listed, done = await _apply(deps, name, vfid, policy, now)
            totals[name].add(listed)
            if done:
                report.append({"volume": name, "vfid": str(vfid), **done})
            await reporter.advance()
    for name, counted in totals.items():
        if deps.on_snapshot_totals is not None:
            deps.on_snapshot_totals(name, counted)
    return {
        "vfolders": report,
        "volumes": {name: counted.to_json() for name, counted in totals.items()},
    }


async def _plan(
    deps: JobDeps,
) -> tuple[dict[str, SnapshotTotals], list[tuple[str, VFolderID, SnapshotPolicy | None]]]:
    """Every volume that takes snapshots (its totals, none counted yet), and every vfolder of
    theirs with its policy (None: only counted)."""
    totals: dict[str, SnapshotTotals] = {}
    plan: list[tuple[str, VFolderID, SnapshotPolicy | None]] = []
    for name, volume in deps.volumes.items():
        if Capability.SNAPSHOT not in await volume.get_capabilities():
            continue
        totals[name] = SnapshotTotals()
        policies = await deps.metadata.get_snapshot_policies(name)
        for vfid in await registered_vfolders(deps, name):
            plan.append((name, vfid, effective_policy(policies, vfid)))
    return totals, plan


async def _apply(
    deps: JobDeps, name: str, vfid: VFolderID, policy: SnapshotPolicy | None, now: float
) -> tuple[list[SnapshotInfo], dict[str, Any]]:
    """The vfolder's snapshots once the policy is applied, and what was done (empty: nothing)."""
    volume = deps.volumes.get(name)
    try:
        listed = await volume.list_snapshots(vfid)
    except StorageProxyError:
        return [], {}  # deleted since the plan was made
    if policy is None or deps.snapshots is None or await is_busy(deps, name, vfid):
        return listed, {}
    done: dict[str, Any] = {}
    due = slot_name(policy.slot_start(now))
    try:
        if due not in {s.id for s in listed}:
            await _wait(deps.snapshots, await deps.snapshots.take(_ACTOR, name, vfid, due))
            done["taken"] = due
        pruned = []
        for old in to_prune(await volume.list_snapshots(vfid), policy):
            await _wait(deps.snapshots, await deps.snapshots.delete(_ACTOR, name, vfid, old.id))
            pruned.append(old.id)
        if pruned:
            done["pruned"] = pruned
    except SnapshotExists:
        pass  # another taker had it: nothing to do in this slot
    except StorageProxyError as e:  # over quota, deleted meanwhile, …: the next run tries again
        log.warning("snapshot policy of %s %s: %s", name, vfid, e.detail)
        done["error"] = e.code
    try:
        return await volume.list_snapshots(vfid), done
    except StorageProxyError:
        return [], done


async def _wait(snapshots: SnapshotService, made: object) -> None:
    if isinstance(made, Started):
        await snapshots.wait(made)
