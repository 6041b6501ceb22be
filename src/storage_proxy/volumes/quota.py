"""Proxy-enforced quotas: limits kept in the metadata store, usage from scans, writes reserved.

Used where the storage cannot enforce limits itself (plain POSIX, NFS, S3, XFS without kernel
quotas).  Two kinds of limit apply to a write: its quota scope's (per user or group) and,
optionally, its vfolder's own.  Every write through the proxy takes a :class:`Reservation` first:
a declared size is refused up front if it cannot fit, a stream that outgrows the limit is cut off,
and concurrent writes count each other's in-flight bytes (and open uploads their declared
lengths), so together they can never pass a limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import QuotaExceeded, QuotaScopeExists
from ..metadata.store import MetadataStore
from ..types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID, VFolderUsage
from .abc import QuotaModel, WriteReservation

_GROW_STEP = 8 << 20

#: What a limit applies to: a whole quota scope, or one vfolder.
Bucket = QuotaScopeID | VFolderID


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

    def __init__(self, model: ProxyQuotaModel, vfid: VFolderID) -> None:
        super().__init__(vfid)
        self._model = model

    def settle(self, *, completed: bool) -> None:
        self._model._release(self._vfid, self.reserved)
        if completed:
            self._model.record_written(self._vfid, self.used)

    async def reserve(self, nbytes: int) -> None:
        """Reserve ``nbytes`` more up front (a declared size); QuotaExceeded if it cannot fit."""
        if nbytes > 0:
            await self._model._grow(self._vfid, nbytes)
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
        metadata: MetadataStore,
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
        metadata: MetadataStore,
        *,
        usage_ttl: float = 30.0,
    ) -> ProxyQuotaModel:
        model = cls.__new__(cls)
        model._setup(volume_name, storage, metadata, usage_ttl)
        return model

    def _setup(
        self, volume_name: str, storage: QuotaStorage, metadata: MetadataStore, usage_ttl: float
    ) -> None:
        self._volume = volume_name
        self._storage = storage
        self._metadata = metadata
        self._usage_ttl = usage_ttl
        self._usage: dict[Bucket, tuple[float, int]] = {}
        self._inflight: defaultdict[Bucket, int] = defaultdict(int)
        self._lock = asyncio.Lock()

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
        used = await self._used_bytes(qsid, fresh=True)
        limit = await self._metadata.get_quota_limit(self._volume, str(qsid))
        return QuotaUsage(used_bytes=used, limit_bytes=limit)

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

    def reservation(self, vfid: VFolderID) -> Reservation:
        return Reservation(self, vfid)

    def record_written(self, vfid: VFolderID, nbytes: int) -> None:
        for bucket in (vfid.quota_scope_id, vfid):
            cached = self._usage.get(bucket)
            if cached is not None:
                self._usage[bucket] = (cached[0], max(0, cached[1] + nbytes))

    def invalidate(self, vfid: VFolderID) -> None:
        self._usage.pop(vfid.quota_scope_id, None)
        self._usage.pop(vfid, None)

    async def _limit(self, bucket: Bucket) -> int | None:
        if isinstance(bucket, QuotaScopeID):
            return await self._metadata.get_quota_limit(self._volume, str(bucket))
        record = await self._metadata.get_vfolder(self._volume, str(bucket))
        return None if record is None else record.limit_bytes

    async def _remaining(self, bucket: Bucket) -> int | None:
        limit = await self._limit(bucket)
        if limit is None:
            return None
        used = await self._used_bytes(bucket)
        prefix = f"{bucket}/" if isinstance(bucket, QuotaScopeID) else str(bucket)
        held = await self._metadata.reserved_upload_bytes(self._volume, prefix)
        return max(0, limit - used - held - self._inflight[bucket])

    async def _used_bytes(self, bucket: Bucket, *, fresh: bool = False) -> int:
        cached = self._usage.get(bucket)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[0] < self._usage_ttl:
            return cached[1]
        used = await self._storage.used_bytes(bucket)
        self._usage[bucket] = (now, used)
        return used

    async def _grow(self, vfid: VFolderID, nbytes: int) -> None:
        async with self._lock:  # check-and-reserve must not interleave between writers
            for bucket, what in ((vfid.quota_scope_id, "quota scope"), (vfid, "vfolder")):
                remaining = await self._remaining(bucket)
                if remaining is not None and nbytes > remaining:
                    raise QuotaExceeded(
                        f"{what} {bucket} has {remaining} bytes left; {nbytes} more were needed",
                        remaining_bytes=remaining,
                    )
            self._inflight[vfid.quota_scope_id] += nbytes
            self._inflight[vfid] += nbytes

    def _release(self, vfid: VFolderID, nbytes: int) -> None:
        for bucket in (vfid.quota_scope_id, vfid):
            self._inflight[bucket] -= nbytes
            if self._inflight[bucket] <= 0:
                del self._inflight[bucket]
