"""Background tasks: long operations with an id, progress, cancellation, and persisted state.

State lives in the metadata store, not in memory, so ``GET /bgtask/{id}`` answers from any worker,
after completion and after a restart.  A task whose runner died is reported ``interrupted``: at
start-up for this node's dead processes, and by anyone once its heartbeat is stale.  A task may
hold vfolders busy (``cloning``, ``deleting``); :meth:`BackgroundTaskService.ensure_writable` is
the one check every write path calls, and it answers 409 while such a task is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from ..core.errors import BackendUnavailable, Conflict, NotFound, StorageProxyError
from ..core.records import BgTaskRecord
from ..metadata.store import MetadataStore

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.25  # seconds between persisted progress updates of one task


class BgTaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


TERMINAL = frozenset(
    {BgTaskStatus.DONE, BgTaskStatus.FAILED, BgTaskStatus.CANCELLED, BgTaskStatus.INTERRUPTED}
)


class VFolderBusy(Conflict):
    code, title = "vfolder-busy", "The vfolder is busy with a background task"


class BgTaskNotFound(NotFound):
    code, title = "bgtask-not-found", "No such background task"


class BgTaskEnded(StorageProxyError):
    status, code, title = 409, "bgtask-not-done", "The background task did not complete"


class ProgressReporter:
    """Handed to a task: it says how far it got; writes are throttled, the last one is not."""

    def __init__(self, service: BackgroundTaskService, task_id: str) -> None:
        self._service = service
        self.task_id = task_id
        self.current: float = 0
        self.total: float | None = None
        self.message = ""
        self._written = 0.0

    async def update(
        self,
        current: float | None = None,
        total: float | None = None,
        message: str | None = None,
        *,
        force: bool = False,
    ) -> None:
        if current is not None:
            self.current = current
        if total is not None:
            self.total = total
        if message is not None:
            self.message = message
        now = time.monotonic()
        if force or now - self._written >= PROGRESS_WRITE_INTERVAL:
            self._written = now
            await self._service._save_progress(self)

    async def advance(self, amount: float = 1, message: str | None = None) -> None:
        await self.update(self.current + amount, message=message)


TaskFunc = Callable[[ProgressReporter], Awaitable[Any]]
BusyClaim = tuple[str, str, str]  # (volume, vfid, status such as "cloning")


class BackgroundTaskService:
    def __init__(
        self,
        metadata: MetadataStore,
        node_id: str,
        *,
        heartbeat: float = 5.0,
        stale_after: float = 60.0,
    ) -> None:
        self._metadata = metadata
        self.node_id = node_id
        self.owner = f"{node_id}/{os.getpid()}"
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self._tasks: dict[str, asyncio.Task[BaseException | None]] = {}
        self._wakeups: dict[str, set[asyncio.Event]] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Tells the other nodes a task changed (Redis pub/sub), so their watchers wake at once.
        self.announce: Callable[[str], Awaitable[Any]] | None = None
        self.on_started: Callable[[str], None] = lambda kind: None
        self.on_finished: Callable[[str, str, float], None] = lambda kind, status, secs: None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.reap(dead_processes=True)
        if self.heartbeat > 0:
            self._heartbeat_task = asyncio.create_task(self._beat(), name="bgtask-heartbeat")

    async def stop(self) -> None:
        """Cancel this process's tasks; they are recorded as interrupted, not cancelled."""
        self._stopping = True
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reap(self, *, dead_processes: bool = False) -> int:
        """Mark running tasks interrupted whose runner is gone (stale, or a dead local pid)."""
        now = time.time()
        live = await self._metadata.list_bgtasks(
            statuses=(BgTaskStatus.PENDING, BgTaskStatus.RUNNING), limit=10_000
        )
        n = 0
        for rec in live:
            node, _, pid = rec.owner.rpartition("/")
            dead = dead_processes and node == self.node_id and not _pid_alive(pid)
            if rec.id not in self._tasks and (dead or rec.updated_at < now - self.stale_after):
                n += await self._finish(rec.id, BgTaskStatus.INTERRUPTED, error=_interrupted())
        if n:
            log.warning("%d background task(s) were interrupted (their runner stopped)", n)
        return n

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                for task_id in list(self._tasks):
                    rec = await self._metadata.get_bgtask(task_id)
                    if rec is not None and rec.cancel_requested:
                        self._tasks[task_id].cancel()
                    else:
                        await self._metadata.update_bgtask(
                            task_id, {"updated_at": time.time()}, only_if_live=True
                        )
                await self.reap()
            except BackendUnavailable as e:  # the store busy or away: expected, one line
                log.warning("bgtask heartbeat failed (%s)", e)
            except Exception:
                log.exception("bgtask heartbeat failed")

    # -- running -----------------------------------------------------------------------------
    async def spawn(
        self,
        kind: str,
        func: TaskFunc,
        *,
        params: dict[str, Any] | None = None,
        busy: Iterable[BusyClaim] = (),
    ) -> str:
        """Record and start a task; with ``busy`` the vfolders are claimed first (409 if taken)."""
        now = time.time()
        record = BgTaskRecord(
            id=uuid.uuid4().hex,
            kind=kind,
            status=BgTaskStatus.PENDING,
            owner=self.owner,
            created_at=now,
            updated_at=now,
            params=dict(params or {}),
        )
        await self._metadata.create_bgtask(record)
        for volume, vfid, status in busy:
            held = await self._metadata.claim_vfolder_status(volume, vfid, status, record.id)
            if held is not None:
                await self._metadata.release_vfolder_status(record.id)
                await self._metadata.delete_bgtask(record.id)
                raise VFolderBusy(f"vfolder {vfid} is {held}; retry when that has finished")
        self._tasks[record.id] = asyncio.create_task(
            self._run(record.id, kind, func), name=f"bgtask-{kind}-{record.id}"
        )
        log.info("bgtask %s (%s) started", record.id, kind)
        return record.id

    async def _run(self, task_id: str, kind: str, func: TaskFunc) -> BaseException | None:
        reporter = ProgressReporter(self, task_id)
        outcome: BaseException | None = None
        started = time.monotonic()
        status = BgTaskStatus.RUNNING
        self.on_started(kind)
        try:  # a cancellation that lands while the task is being marked running counts too
            await self._metadata.update_bgtask(task_id, {"status": BgTaskStatus.RUNNING})
            result = await func(reporter)
        except asyncio.CancelledError as e:
            outcome = e
            status = BgTaskStatus.INTERRUPTED if self._stopping else BgTaskStatus.CANCELLED
            error = _interrupted() if self._stopping else None
            await self._finish(task_id, status, reporter, error=error)
        except Exception as e:
            outcome = e
            if isinstance(e, StorageProxyError):
                error = {"status": e.status, "code": e.code, "detail": e.detail}
            else:
                log.exception("bgtask %s failed", task_id)
                error = {"status": 500, "code": "internal-error", "detail": str(e)}
            status = BgTaskStatus.FAILED
            await self._finish(task_id, status, reporter, error=error)
        else:
            if reporter.total is not None:
                reporter.current = reporter.total
            status = BgTaskStatus.DONE
            await self._finish(task_id, status, reporter, result=result)
        finally:
            self._tasks.pop(task_id, None)
            self.on_finished(kind, status, time.monotonic() - started)
        log.info("bgtask %s finished: %s", task_id, type(outcome).__name__ if outcome else "done")
        return outcome

    async def _finish(
        self,
        task_id: str,
        status: BgTaskStatus,
        reporter: ProgressReporter | None = None,
        *,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> int:
        now = time.time()
        fields: dict[str, Any] = {"status": status, "updated_at": now, "finished_at": now}
        fields.update(result=result, error=error)
        if reporter is not None:
            fields.update(current=reporter.current, total=reporter.total, message=reporter.message)
        changed = await self._metadata.update_bgtask(task_id, fields, only_if_live=True)
        await self._metadata.release_vfolder_status(task_id)
        await self._changed(task_id)
        return int(changed)

    async def _save_progress(self, reporter: ProgressReporter) -> None:
        fields = {"current": reporter.current, "total": reporter.total, "message": reporter.message}
        fields["updated_at"] = time.time()
        await self._metadata.update_bgtask(reporter.task_id, fields, only_if_live=True)
        await self._changed(reporter.task_id)

    async def _changed(self, task_id: str) -> None:
        self.notify(task_id)
        if self.announce is not None:
            try:
                await self.announce(task_id)
            except Exception as e:  # other nodes' watchers fall back to polling
                log.debug("could not announce bgtask %s: %s", task_id, e)

    # -- asking ------------------------------------------------------------------------------
    async def get(self, task_id: str) -> BgTaskRecord:
        record = await self._metadata.get_bgtask(task_id)
        if record is None:
            raise BgTaskNotFound(f"no background task {task_id}")
        return record

    async def wait(self, task_id: str) -> BgTaskRecord:
        """Until the task ends; raises unless it is done (a local task's own error as it was)."""
        task = self._tasks.get(task_id)
        if task is not None:
            outcome = await asyncio.shield(task)
            if isinstance(outcome, Exception):
                raise outcome
        record = await self.get(task_id)
        async for state in self.watch(task_id):
            record = state
        if record.status != BgTaskStatus.DONE:
            raise BgTaskEnded(
                f"background task {task_id} ended {record.status}: "
                + str((record.error or {}).get("detail", "")),
                bgtask_id=task_id,
                bgtask_status=record.status,
            )
        return record

    async def run_watched(
        self,
        kind: str,
        func: TaskFunc,
        started: Callable[[str], Awaitable[None]],
        *,
        params: dict[str, Any] | None = None,
    ) -> BgTaskRecord:
        """A request's own work as a background task others can follow (a big batch, a big
        archive): started, its id told to ``started`` (the request sends it in its headers),
        then awaited to its end.  BgTaskEnded if it did not end done (cancelled meanwhile, or
        failed with an error that was recorded)."""
        task_id = await self.spawn(kind, func, params=params)
        try:
            await started(task_id)
        except BaseException:  # the request could not start (its client gone): nor does the task
            await asyncio.shield(self.cancel(task_id))
            raise
        return await self.wait(task_id)

    async def cancel(self, task_id: str) -> BgTaskRecord:
        record = await self.get(task_id)
        if record.status in TERMINAL:
            return record
        task = self._tasks.get(task_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        else:  # another worker runs it: its heartbeat sees the flag
            await self._metadata.update_bgtask(task_id, {"cancel_requested": True})
        return await self.get(task_id)

    async def watch(self, task_id: str, poll: float = 1.0) -> AsyncIterator[BgTaskRecord]:
        """Each new state of the task until it ends (woken by news from this or, through Redis, any
        process; polled as well, since news may be lost)."""
        last: tuple[Any, ...] | None = None
        while True:
            wakeup = asyncio.Event()
            self._wakeups.setdefault(task_id, set()).add(wakeup)
            try:
                record = await self.get(task_id)
                state = (record.status, record.current, record.total, record.message)
                if state != last:
                    last = state
                    yield record
                if record.status in TERMINAL:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), poll)
            finally:
                waiters = self._wakeups.get(task_id, set())
                waiters.discard(wakeup)
                if not waiters:
                    self._wakeups.pop(task_id, None)

    def notify(self, task_id: str) -> None:
        """Wake this process's watchers of the task (also on news from other nodes)."""
        for event in self._wakeups.get(task_id, ()):
            event.set()

    # -- busy vfolders -----------------------------------------------------------------------
    async def ensure_writable(self, volume: str, vfid: str) -> None:
        """409 while a live task holds the vfolder (a clone or delete in progress)."""
        held = await self._metadata.get_vfolder_status(volume, vfid)
        if held is not None:
            status, task_id = held
            raise VFolderBusy(
                f"vfolder {vfid} is {status}; retry when that has finished",
                vfolder_status=status,
                bgtask_id=task_id,
            )


def to_json(record: BgTaskRecord) -> dict[str, Any]:
    return {
        "task_id": record.id,
        "kind": record.kind,
        "status": record.status,
        "current_progress": record.current,
        "total_progress": record.total,
        "message": record.message,
        "params": record.params,
        "result": record.result,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
    }


def _interrupted() -> dict[str, Any]:
    return {
        "status": 500,
        "code": "interrupted",
        "detail": "the process running this task stopped before it finished",
    }


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
