"""The whole-object checksums of an early upload, computed while its bytes arrive.

Publishing an upload records the sha256 and md5 of the object.  Computed only once the last
byte had arrived, they were a second pass over the whole staged file that the client's last
PATCH waited for (about 0.4 s of CPU per 256 MiB on this project's reference machine, most of
it md5).  Here the bytes an upload has made final are hashed in order while the rest is still
arriving, each algorithm in a thread of its own, so publishing only hashes what came last.

A running hash belongs to one early multipart upload (its upload id): a whole-body PUT that
restarts the session discards the early upload, and a later one gets a new id, so a hash of
bytes that were replaced is never used.  What this process does not have (another worker took
the PATCHes, a restart, a hash that failed) is simply hashed at publication, from the start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .multipart import new_hashers

log = logging.getLogger(__name__)

#: Sessions whose running hash a process keeps; the oldest is dropped first (it is then hashed
#: from the start when published).
MAX_RUNNING = 256
_READ = 4 << 20


def hash_range(path: Path, start: int, end: int, hasher: Any) -> None:
    """Feed bytes ``start``..``end`` of ``path`` to ``hasher`` (blocking; hashlib releases the
    GIL on large buffers, so several of these run in parallel)."""
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        while start < end:
            data = os.pread(fd, min(_READ, end - start), start)
            if not data:
                raise RuntimeError(f"{path.name} is shorter than {end} bytes")
            hasher.update(data)
            start += len(data)


async def hash_in_parallel(path: Path, start: int, end: int, hashers: Sequence[Any]) -> None:
    """Each hasher over the same range, in a thread of its own."""
    if start < end and hashers:
        await asyncio.gather(*(asyncio.to_thread(hash_range, path, start, end, h) for h in hashers))


class RunningHash:
    """sha256 and md5 of a staged file's final bytes, fed in order as they become final."""

    def __init__(self, path: Path, upload_id: str) -> None:
        self.path = path
        self.upload_id = upload_id
        self.hashers = new_hashers(True)
        self.done = 0  # bytes hashed
        self._target = 0
        self._task: asyncio.Task[None] | None = None
        self.failed = False

    def raise_to(self, final: int) -> None:
        """Bytes below ``final`` no longer change: hash them (in the background)."""
        if final <= self._target or self.failed:
            return
        self._target = final
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"s3-prehash-{self.path.name}")

    async def _run(self) -> None:
        try:
            while self.done < self._target:
                end = self._target
                await hash_in_parallel(self.path, self.done, end, self.hashers)
                self.done = end
        except Exception as e:  # publishing hashes the file from the start instead
            self.failed = True
            log.info("running hash of %s stopped: %s", self.path.name, e)

    async def settle(self) -> None:
        """Wait for what was asked so far."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def cancel(self) -> None:
        self.failed = True
        if self._task is not None:
            self._task.cancel()


class RunningHashes:
    """The running hashes of the sessions this process sends early parts for."""

    def __init__(self) -> None:
        self._by_session: OrderedDict[str, RunningHash] = OrderedDict()

    def advance(self, session_id: str, path: Path, upload_id: str, final: int) -> None:
        running = self._by_session.get(session_id)
        if running is None or running.upload_id != upload_id:
            if running is not None:
                running.cancel()
            while len(self._by_session) >= MAX_RUNNING:
                _, oldest = self._by_session.popitem(last=False)
                oldest.cancel()
            running = self._by_session[session_id] = RunningHash(path, upload_id)
        running.raise_to(final)

    async def take(self, session_id: str, upload_id: str) -> tuple[list[Any], int]:
        """The hashers of ``upload_id``'s bytes and how many bytes they have seen (fresh
        hashers and 0 when this process has none to offer)."""
        running = self._by_session.pop(session_id, None)
        if running is not None and running.upload_id == upload_id:
            await running.settle()
            if not running.failed:
                return running.hashers, running.done
        elif running is not None:
            running.cancel()
        return new_hashers(True), 0

    def drop(self, session_id: str) -> None:
        running = self._by_session.pop(session_id, None)
        if running is not None:
            running.cancel()

    def close(self) -> None:
        for running in self._by_session.values():
            running.cancel()
        self._by_session.clear()
