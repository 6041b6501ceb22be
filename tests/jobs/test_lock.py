"""The job lease: of two runners sharing the metadata store, only one runs a job at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from storage_proxy.config import validate
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.metadata.sqlite_base import MetadataBusy
from storage_proxy.services.bgtasks import BackgroundTaskService, ProgressReporter
from storage_proxy.services.jobs import JobRunner, JobSpec
from storage_proxy.services.jobs.common import JobDeps
from storage_proxy.services.jobs.lock import MetadataJobLock
from storage_proxy.services.jobs.settings import JobSettings


async def test_only_one_of_two_runners_runs_the_job(tmp_path: Path) -> None:
    db = tmp_path / "meta.sqlite3"
    raw = validate({"volume": {"v": {"backend": "vfs", "path": str(tmp_path)}}})["jobs"]
    settings = JobSettings.from_config(raw)
    running, runs = 0, []
    gate = asyncio.Event()

    async def job(deps: JobDeps, reporter: ProgressReporter) -> str:
        nonlocal running
        running += 1
        runs.append(deps.bgtasks.owner)
        assert running == 1
        await gate.wait()
        running -= 1
        return "ran"

    runners, stores = [], []
    for worker in ("w1", "w2"):  # two workers: separate connections to one SQLite file
        store = SqliteMetadataStore(db)
        await store.open()
        bgtasks = BackgroundTaskService(store, "node", heartbeat=0)
        bgtasks.owner = f"node/{worker}"
        deps = JobDeps(None, store, None, bgtasks, settings, None)  # type: ignore[arg-type]
        runners.append(JobRunner(deps, [JobSpec("demo", 60, job)]))
        stores.append(store)
    ids = await asyncio.gather(*(r.try_run("demo", periodic=True) for r in runners))
    started = [i for i in ids if i is not None]
    assert len(started) == 1
    winner = runners[ids.index(started[0])]
    loser = runners[1 - ids.index(started[0])]
    assert await loser.try_run("demo") is None  # held while it runs
    gate.set()
    assert (await winner.deps.bgtasks.wait(started[0])).result == "ran"
    # released when done, and a scheduled run right after is skipped as recent
    assert await loser.try_run("demo", periodic=True) is None
    again = await loser.try_run("demo")
    assert again is not None and (await loser.deps.bgtasks.wait(again)).status == "done"
    assert len(runs) == 2
    for store in stores:
        await store.close()


async def test_an_expired_lease_can_be_taken_over(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "m.sqlite3")
    await store.open()
    lock = MetadataJobLock(store)
    assert await lock.acquire("job:x", "a", ttl=0.05)
    assert not await lock.acquire("job:x", "b", ttl=10)
    assert await lock.renew("job:x", "a", ttl=0.05)
    await asyncio.sleep(0.1)  # "a" died without releasing
    assert await lock.acquire("job:x", "b", ttl=10)
    await lock.release("job:x", "b")
    assert await lock.acquire("job:x", "a", ttl=10)
    await store.close()


async def test_a_busy_store_is_one_warning_line_per_try(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The metadata store busy or away when a periodic job's lease is taken: the next try
    comes as scheduled and the log has one line for it, no traceback."""
    raw = validate({"volume": {"v": {"backend": "vfs", "path": str(tmp_path)}}})["jobs"]
    store = SqliteMetadataStore(tmp_path / "m.sqlite3")
    await store.open()
    tries = 0

    class Busy:
        async def acquire(self, *args: Any) -> bool:
            nonlocal tries
            tries += 1
            raise MetadataBusy("the metadata store is busy")

        async def release(self, *args: Any) -> None:
            pass

    async def job(deps: JobDeps, reporter: ProgressReporter) -> str:
        return "ran"

    bgtasks = BackgroundTaskService(store, "node", heartbeat=0)
    deps = JobDeps(None, store, None, bgtasks, JobSettings.from_config(raw), None)  # type: ignore[arg-type]
    runner = JobRunner(deps, [JobSpec("demo", 0.02, job)], lock=Busy())  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="storage_proxy.services.jobs"):
        runner.start()
        async with asyncio.timeout(5):
            while tries < 3:  # noqa: ASYNC110 - the runner's loop tries on its own schedule
                await asyncio.sleep(0.01)
        await runner.stop()
    failed = [r for r in caplog.records if "job demo failed" in r.getMessage()]
    assert len(failed) >= 2 and all(r.exc_info is None for r in failed)
    await store.close()
