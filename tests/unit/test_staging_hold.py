"""A holder cancelled while its lock is being taken in a thread (a client gone, a shutdown) never
leaves the staged upload locked: the lock the thread takes afterwards is given back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage_proxy.volumes.staging import LocalStaging

SID = "0123456789abcdef0123456789abcdef"


async def _slow(func: Callable[..., Any], *args: Any) -> Any:
    def late() -> Any:
        time.sleep(0.2)  # the thread is still taking the lock when the holder is cancelled
        return func(*args)

    return await asyncio.to_thread(late)


async def test_a_cancelled_holder_leaves_no_lock(tmp_path: Path) -> None:
    staging = LocalStaging(tmp_path / "uploads", run=_slow)
    await staging.prepare(SID)

    async def holder() -> None:
        async with staging.hold(SID):
            await asyncio.sleep(10)

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.4)  # the thread has taken the lock by now, and given it back
    async with staging.hold(SID) as held:
        assert held.session_id == SID
