"""Periodic jobs: each on its own interval, each run as a background task under a lease.

Every worker (and later every node) schedules every job; the lease decides who runs it, and a
scheduled run is skipped when, under the lease, the newest run of the job started less than most
of an interval ago (another worker's timer fired first).  A run is a bgtask (kind
``job:<name>``): its progress and its result (the usage figures, the orphan report, …) are
persisted and readable by id or by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...core.errors import BackendUnavailable, Conflict, NotFound
from ...core.records import BgTaskRecord
from ..bgtasks import BgTaskStatus, ProgressReporter
from . import orphans, retention, scrub, snapshots, trash, usage
from .common import JobDeps
from .lock import JobLock, MetadataJobLock
from .settings import JobSettings

log = logging.getLogger(__name__)

JobFunc = Callable[[JobDeps, ProgressReporter], Awaitable[Any]]
RECENT_FRACTION = 0.9  # a scheduled run is skipped if the last one started within this much


@dataclass(frozen=True)
class JobSpec:
    name: str
    interval: float  # seconds; 0: not scheduled (still runnable on demand)
    func: JobFunc


class JobBusy(Conflict):
    code, title = "job-running", "The job is running (here or on another worker)"


def default_jobs(settings: JobSettings) -> list[JobSpec]:
    return [
        JobSpec(usage.NAME, settings.usage_scan_interval, usage.run),
        JobSpec(orphans.NAME, settings.orphan_scan_interval, orphans.run),
        JobSpec(trash.NAME, settings.trash_purge_interval, trash.run),
        JobSpec(retention.NAME, settings.retention_interval, retention.run),
        JobSpec(scrub.NAME, settings.scrub_interval, scrub.run),
        JobSpec(snapshots.NAME, settings.snapshot_policy_interval, snapshots.run),
    ]


class JobRunner:
    def __init__(
        self, deps: JobDeps, jobs: list[JobSpec] | None = None, lock: JobLock | None = None
    ) -> None:
        self.deps = deps
        self.jobs = {j.name: j for j in (jobs if jobs is not None else default_jobs(deps.settings))}
        self.lock = lock or MetadataJobLock(deps.metadata)
        self.holder = deps.bgtasks.owner
        self.lease_ttl = deps.settings.lease_ttl
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for job in self.jobs.values():
            if job.interval > 0:
                self._loops.append(asyncio.create_task(self._loop(job), name=f"job-{job.name}"))

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()

    async def _loop(self, job: JobSpec) -> None:
        while True:
            await asyncio.sleep(job.interval)
            try:
                task_id = await self.try_run(job.name, periodic=True)
                if task_id is not None:
                    await self.deps.bgtasks.wait(task_id)
            except asyncio.CancelledError:
                raise
            except BackendUnavailable as e:  # the store busy or away: expected, one line
                log.warning("job %s failed (%s); next try in %.0fs", job.name, e, job.interval)
            except Exception:
                log.exception("job %s failed; next try in %.0fs", job.name, job.interval)

    async def try_run(self, name: str, *, periodic: bool = False) -> str | None:
        """Start the job as a bgtask if this runner wins its lease; its id, else None."""
        job = self._job(name)
        if not await self.lock.acquire(f"job:{name}", self.holder, self.lease_ttl):
            log.debug("job %s: another runner holds the lease", name)
            return None

        async def body(reporter: ProgressReporter) -> Any:
            renew = asyncio.create_task(self._renew(name))
            try:
                return await job.func(self.deps, reporter)
            finally:
                renew.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renew
                await self.lock.release(f"job:{name}", self.holder)

        try:
            if periodic and await self._ran_recently(job):
                await self.lock.release(f"job:{name}", self.holder)
                return None
            return await self.deps.bgtasks.spawn(f"job:{name}", body, params={"job": name})
        except BaseException:
            await self.lock.release(f"job:{name}", self.holder)
            raise

    async def _ran_recently(self, job: JobSpec) -> bool:
        newest = await self.deps.metadata.list_bgtasks(kind=f"job:{job.name}", limit=1)
        return bool(newest) and newest[0].created_at > time.time() - job.interval * RECENT_FRACTION

    async def run_now(self, name: str) -> str:
        """On demand (``POST /jobs/{name}``): 409 while any runner has the job going."""
        task_id = await self.try_run(name)
        if task_id is None:
            raise JobBusy(f"job {name} is running; try again when it has finished")
        return task_id

    async def _renew(self, name: str) -> None:
        while True:
            await asyncio.sleep(max(self.lease_ttl / 3, 0.05))
            if not await self.lock.renew(f"job:{name}", self.holder, self.lease_ttl):
                log.warning("job %s: lost its lease while running", name)

    async def last_result(self, name: str) -> BgTaskRecord | None:
        """The newest completed run of the job, whichever worker ran it."""
        self._job(name)
        done = await self.deps.metadata.list_bgtasks(
            kind=f"job:{name}", statuses=(BgTaskStatus.DONE,), limit=1
        )
        return done[0] if done else None

    def _job(self, name: str) -> JobSpec:
        try:
            return self.jobs[name]
        except KeyError:
            raise NotFound(f"no job {name!r}; jobs: {', '.join(sorted(self.jobs))}") from None
