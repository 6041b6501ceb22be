"""Bounded concurrency for bulk S3 work: parts of one upload, keys of one copy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class Window:
    """At most ``size`` tasks at once; a failed task fails the next ``submit`` or ``drain``."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def submit(self, job: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start ``job()`` once a slot is free (raising first if an earlier task failed)."""
        await self._slots.acquire()
        try:
            self._reap()
        except BaseException:
            self._slots.release()
            raise
        task = asyncio.create_task(job())
        task.add_done_callback(lambda _: self._slots.release())
        self._tasks.add(task)

    def _reap(self) -> None:
        for done in [t for t in self._tasks if t.done()]:
            self._tasks.discard(done)
            done.result()

    @property
    def idle(self) -> bool:
        """No task running (a failed one is raised here)."""
        self._reap()
        return not self._tasks

    async def wait_any(self, event: asyncio.Event) -> None:
        """Until a task ends (a failure is raised) or ``event`` is set."""
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self._reap()

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            self._reap()

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def for_each(items: Iterable[T], job: Callable[[T], Awaitable[Any]], limit: int) -> None:
    """``job(item)`` for every item, at most ``limit`` at once; the first failure stops the rest
    and is raised."""
    window = Window(limit)

    async def run(item: T) -> None:
        await job(item)

    try:
        for item in items:
            await window.submit(partial(run, item))
        await window.drain()
    except BaseException:
        await window.cancel()
        raise
