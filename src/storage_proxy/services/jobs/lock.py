"""Who runs a periodic job when several workers (and later nodes) all schedule it: a lease.

The interface is small so a Redis or etcd lock can replace the metadata-store lease for several
nodes; the SQLite lease is shared by the workers of one node.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from ...metadata.store import MetadataStore


class JobLock(ABC):
    @abstractmethod
    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease for ``ttl`` seconds (or extend it if ``holder`` has it)."""

    async def renew(self, name: str, holder: str, ttl: float) -> bool:
        return await self.acquire(name, holder, ttl)

    @abstractmethod
    async def release(self, name: str, holder: str, keep_for: float = 0) -> None:
        """Give it up; ``keep_for`` > 0 keeps it idle that long (no one reruns the job early)."""


class MetadataJobLock(JobLock):
    """A lease row with an expiry in the metadata store (one atomic upsert per attempt)."""

    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        return await self._metadata.acquire_lease(name, holder, ttl, time.time())

    async def release(self, name: str, holder: str, keep_for: float = 0) -> None:
        keep_until = time.time() + keep_for if keep_for > 0 else None
        await self._metadata.release_lease(name, holder, keep_until)
