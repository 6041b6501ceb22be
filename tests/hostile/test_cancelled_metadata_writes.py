"""A request cancelled while its metadata write waits (a client hanging up, a drain cutting it)
leaves the store usable: the next write starts its own transaction, whenever the cancel came."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from storage_proxy.metadata.sqlite import SqliteMetadataStore


@pytest.mark.hostile
async def test_writes_after_cancelled_writes_succeed(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "metadata.db")
    await store.open()
    try:
        for i in range(120):  # cancelled at every point of BEGIN, the work, COMMIT
            sql = "INSERT OR REPLACE INTO vfolder_versions VALUES (?, ?, ?)"
            task = asyncio.create_task(store._write(sql, ("vol", f"v{i}", i)))  # noqa: SLF001
            for _ in range(i % 6):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await store._write(sql, ("vol", "after", i))  # noqa: SLF001
        rows = await store._all("SELECT keep FROM vfolder_versions WHERE vfid = 'after'")  # noqa: SLF001
        assert rows == [(119,)]
    finally:
        await store.close()
