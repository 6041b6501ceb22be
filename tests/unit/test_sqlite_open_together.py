"""Worker processes open the node's new database at the same moment: each must come up (one of
them used to be answered "database is locked" while switching it to WAL, and then could not even
exit: its connection's thread was left running)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from storage_proxy.metadata.sqlite import SqliteMetadataStore

PROCESSES = 8
ROUNDS = 10


def _open(path: str, barrier: object) -> None:
    async def go() -> None:
        store = SqliteMetadataStore(path)
        await store.open()
        await store.close()

    barrier.wait()  # type: ignore[attr-defined]
    asyncio.run(go())


def test_workers_opening_a_new_database_together_all_come_up(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        barrier = ctx.Barrier(PROCESSES)
        path = str(tmp_path / f"node-{round_}.sqlite3")
        procs = [ctx.Process(target=_open, args=(path, barrier)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        assert codes == [0] * PROCESSES, (round_, codes)


async def test_a_database_that_cannot_be_opened_leaves_no_thread_behind(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.sqlite3"
    path.write_bytes(b"this is not an SQLite file, not even its header" * 100)
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(sqlite3.DatabaseError):
        await SqliteMetadataStore(path).open()
    await asyncio.sleep(0.2)
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []  # (a connection's thread left running keeps a worker from ever exiting)
