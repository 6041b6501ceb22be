"""Proxy-enforced quotas: limits kept in the metadata store, usage from scans, writes reserved.

Used where the storage cannot enforce limits itself (plain POSIX, NFS, S3, XFS without kernel
quotas).  Two kinds of limit apply to a write: its quota scope's (per user or group) and,
optionally, its vfolder's own.  Every write through the proxy takes a :class:`Reservation` first:
a declared size is refused up front if it cannot fit, a stream that outgrows the limit is cut off
before the bytes that would pass it are written.

One ledger in the metadata store (shared by every worker process, and by every node when the
store is etcd) holds what a scan cannot see yet: the bytes of writes in flight, of writes finished
since the scan began, and open uploads' declared lengths.  A reservation is checked against all
of it and recorded in one transaction, so concurrent writers anywhere never jointly pass a limit.
A process's holdings expire unless it renews them (see :class:`LedgerKeeper`), so a killed worker
leaves nothing reserved for long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import QuotaExceeded, QuotaScopeExists
from ..core.records import QuotaBucket
from ..core.types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID, VFolderUsage
from .abc import QuotaModel, WriteReservation
from .books import QuotaBook

_GROW_STEP = 8 << 20
#: Seconds a reservation lives in the ledger unless its process renews it.
HOLDING_TTL = 60.0
#: Seconds a written entry is kept (longer than any usage cache, so a scan has seen it).
WRITTEN_KEEP = 3600.0

#: What a limit applies to: a whole quota scope, or one vfolder.
Bucket = QuotaScopeID | VFolderID

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuotaStorage:
    """How the model reaches the storage: the only part that differs between backends.

    POSIX volumes keep scopes as directories and scan trees; an object store keeps a marker key
    per scope and lists prefixes.  Everything else (limits, reservations, caching) is shared.
    """

    #: Whether the scope exists on the storage.
    scope_exists: Callable[[QuotaScopeID], Awaitable[bool]]
    #: Create the scope on the storage; raise QuotaScopeExists if it is already there.
    create_scope: Callable[[QuotaScopeID], Awaitable[None]]
    #: Bytes stored now in a quota scope or a vfolder (the model caches the answer).
    used_bytes: Callable[[Bucket], Awaitable[int]]

    @classmethod
    def posix(
        cls,
        scope_path: Callable[[QuotaScopeID], Path],
        vfolder_path: Callable[[VFolderID], Path],
        scan: Callable[[Path], Awaitable[VFolderUsage]],
    ) -> QuotaStorage:
        """Scopes as directories, usage by scanning the tree."""

        async def exists(qsid: QuotaScopeID) -> bool:
            return await asyncio.to_thread(scope_path(qsid).is_dir)

        async def create(qsid: QuotaScopeID) -> None:
            try:
                await asyncio.to_thread(scope_path(qsid).mkdir, parents=True, exist_ok=False)
            except FileExistsError:
                raise QuotaScopeExists(f"quota scope {qsid} already exists") from None

        async def used(bucket: Bucket) -> int:
            if isinstance(bucket, QuotaScopeID):
                return (await scan(scope_path(bucket))).used_bytes
            return (await scan(vfolder_path(bucket))).used_bytes

        return cls(exists, create, used)


class Reservation(WriteReservation):
    """Bytes promised to one write into a vfolder; grows on demand while every limit has room."""

    def __init__(self, model: ProxyQuotaModel, vfid: VFolderID, counts_as_written: bool) -> None:
        super().__init__(vfid)
        self._model = model
        self.id = uuid.uuid4().hex
        self.in_ledger = False
        self._counts_as_written = counts_as_written

    async def settle(self, *, completed: bool) -> None:
        written = self.used if completed and self._counts_as_written else 0
        if self.in_ledger:
            await asyncio.shield(self._model._settle(self, written))

    async def reserve(self, nbytes: int) -> None:
        """Reserve ``nbytes`` more up front (a declared size); QuotaExceeded if it cannot fit."""
        if nbytes > 0:
            await self._model._grow(self, nbytes)
            self.reserved += nbytes

    async def consume(self, nbytes: int) -> None:
        """Account ``nbytes`` about to be written, growing the reservation when needed."""
        self.used += nbytes
        deficit = self.used - self.reserved
        if deficit > 0:
            try:  # grow in steps, so a long stream does not query the store for every chunk
                await self.reserve(max(deficit, _GROW_STEP))
            except QuotaExceeded:
                if deficit >= _GROW_STEP:
                    raise
                await self.reserve(deficit)


class ProxyQuotaModel(QuotaModel):
    """Limits in the metadata store; usage from the storage (scans, listings), cached.

    The constructor takes the POSIX layout (scope and vfolder paths, a tree scan);
    :meth:`with_storage` takes any :class:`QuotaStorage` (e.g. an object store's listings).
    """

    def __init__(
        self,
        volume_name: str,
        scope_path: Callable[[QuotaScopeID], Path],
        vfolder_path: Callable[[VFolderID], Path],
        metadata: QuotaBook,
        scan: Callable[[Path], Awaitable[VFolderUsage]],
        *,
        usage_ttl: float = 30.0,
    ) -> None:
        storage = QuotaStorage.posix(scope_path, vfolder_path, scan)
        self._setup(volume_name, storage, metadata, usage_ttl)

    @classmethod
    def with_storage(
        cls,
        volume_name: str,
        storage: QuotaStorage,
        metadata: QuotaBook,
        *,
        usage_ttl: float = 30.0,
    ) -> ProxyQuotaModel:
        model = cls.__new__(cls)
        model._setup(volume_name, storage, metadata, usage_ttl)
        return model

    def _setup(
        self, volume_name: str, storage: QuotaStorage, metadata: QuotaBook, usage_ttl: float
    ) -> None:
        self._volume = volume_name
        self._storage = storage
        self._metadata = metadata
        self._usage_ttl = usage_ttl
        # bucket → (monotonic time of the scan, wall time it began, bytes it found)
        self._usage: dict[Bucket, tuple[float, float, int]] = {}
        self.holder = f"local/{os.getpid()}"  # the daemon names its process ("<node>/<pid>")

    # -- scope lifecycle ---------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        await self._storage.create_scope(qsid)
        await self._metadata.set_quota_limit(
            self._volume, str(qsid), config.limit_bytes if config else None
        )

    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await self._storage.scope_exists(qsid)

    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        if not await self.quota_scope_exists(qsid):
            return None
        used, _ = await self._used_bytes(qsid, fresh=True)
        limit = await self._metadata.get_quota_limit(self._volume, str(qsid))
        return QuotaUsage(used_bytes=used, limit_bytes=limit)

    async def usage_after_write(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        """No limit: nothing for an alert to compare, no scan. A limit: the usage a reservation
        is checked against -- the cached scan plus what the ledger holds since it began -- not
        a fresh scan of the whole tree after every file. (A model that describes usage from
        its storage's own figures answers with those.)"""
        if type(self).describe_quota_scope is not ProxyQuotaModel.describe_quota_scope:
            return await self.describe_quota_scope(qsid)
        bucket = await self._bucket(qsid)
        if bucket is None:
            return None
        held = await self._metadata.bucket_held(self._volume, bucket, time.time())
        return QuotaUsage(used_bytes=bucket.used + held, limit_bytes=bucket.limit)

    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        await self._metadata.set_quota_limit(self._volume, str(qsid), config.limit_bytes)

    async def unset_quota(self, qsid: QuotaScopeID) -> None:
        await self._metadata.set_quota_limit(self._volume, str(qsid), None)

    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None:
        await self._metadata.delete_quota_scope(self._volume, str(qsid))
        self._usage.pop(qsid, None)

    # -- accounting --------------------------------------------------------------------------
    async def remaining_bytes(self, qsid: QuotaScopeID) -> int | None:
        return await self._remaining(qsid)

    async def headroom(self, vfid: VFolderID) -> int | None:
        scope = await self._remaining(vfid.quota_scope_id)
        folder = await self._remaining(vfid)
        known = [r for r in (scope, folder) if r is not None]
        return min(known) if known else None

    def reservation(self, vfid: VFolderID, *, counts_as_written: bool = True) -> Reservation:
        return Reservation(self, vfid, counts_as_written)

    async def record_written(self, vfid: VFolderID, nbytes: int) -> None:
        keys = [b.key for b in await self.buckets(vfid)]
        await self._metadata.record_written(self._volume, keys, nbytes, time.time())

    def invalidate(self, vfid: VFolderID) -> None:
        self._usage.pop(vfid.quota_scope_id, None)
        self._usage.pop(vfid, None)

    async def _limit(self, bucket: Bucket) -> int | None:
        if isinstance(bucket, QuotaScopeID):
            return await self._metadata.get_quota_limit(self._volume, str(bucket))
        return await self._metadata.get_vfolder_limit(self._volume, str(bucket))

    async def _bucket(self, bucket: Bucket) -> QuotaBucket | None:
        """The limit on ``bucket`` as the ledger needs it; None when there is no limit."""
        limit = await self._limit(bucket)
        if limit is None:
            return None
        used, scanned_at = await self._used_bytes(bucket)
        prefix = f"{bucket}/" if isinstance(bucket, QuotaScopeID) else str(bucket)
        return QuotaBucket(str(bucket), prefix, limit, used, scanned_at)

    async def buckets(self, vfid: VFolderID) -> list[QuotaBucket]:
        """The limits a write into ``vfid`` is checked against (scope first)."""
        found = [await self._bucket(vfid.quota_scope_id), await self._bucket(vfid)]
        return [b for b in found if b is not None]

    async def _remaining(self, bucket: Bucket) -> int | None:
        b = await self._bucket(bucket)
        if b is None:
            return None
        held = await self._metadata.bucket_held(self._volume, b, time.time())
        return max(0, b.limit - b.used - held)

    async def _used_bytes(self, bucket: Bucket, *, fresh: bool = False) -> tuple[int, float]:
        """Bytes stored in the bucket and the wall time the scan that found them began."""
        cached = self._usage.get(bucket)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[0] < self._usage_ttl:
            return cached[2], cached[1]
        began = time.time()
        used = await self._storage.used_bytes(bucket)
        self._usage[bucket] = (now, began, used)
        return used, began

    async def _grow(self, res: Reservation, nbytes: int) -> None:
        buckets = await self.buckets(res._vfid)
        if not buckets:
            return  # no limit applies: nothing to hold
        now = time.time()
        short = await self._metadata.reserve(
            self._volume, buckets, res.id, nbytes, self.holder, now, HOLDING_TTL
        )
        if short is not None:
            what = "vfolder" if short.key == str(res._vfid) else "quota scope"
            raise QuotaExceeded(
                f"{what} {short.key} has {short.remaining} bytes left; {nbytes} more were needed",
                remaining_bytes=short.remaining,
            )
        res.in_ledger = True

    async def _settle(self, res: Reservation, written: int) -> None:
        await self._metadata.settle(self._volume, res.id, written, time.time())
