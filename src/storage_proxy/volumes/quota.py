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
from pathlib import Path
from types import TracebackType

from ..errors import QuotaExceeded, QuotaScopeExists
from ..metadata.store import MetadataStore
from ..types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID, VFolderUsage
from .abc import QuotaModel

_GROW_STEP = 8 << 20

#: What a limit applies to: a whole quota scope, or one vfolder.
Bucket = QuotaScopeID | VFolderID


class Reservation:
    """Bytes promised to one write into a vfolder; grows on demand while every limit has room."""

    def __init__(self, model: ProxyQuotaModel, vfid: VFolderID) -> None:
        self._model = model
        self._vfid = vfid
        self.reserved = 0
        self.used = 0

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._model._release(self._vfid, self.reserved)
        if exc_type is None:
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
    """Quota scopes as directories; limits in the metadata store; usage by scanning, cached."""

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
        self._volume = volume_name
        self._scope_path = scope_path
        self._vfolder_path = vfolder_path
        self._metadata = metadata
        self._scan = scan
        self._usage_ttl = usage_ttl
        self._usage: dict[Bucket, tuple[float, int]] = {}
        self._inflight: defaultdict[Bucket, int] = defaultdict(int)
        self._lock = asyncio.Lock()

    # -- scope lifecycle ---------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        path = self._scope_path(qsid)
        try:
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=False)
        except FileExistsError:
            raise QuotaScopeExists(f"quota scope {qsid} already exists") from None
        await self._metadata.set_quota_limit(
            self._volume, str(qsid), config.limit_bytes if config else None
        )

    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await asyncio.to_thread(self._scope_path(qsid).is_dir)

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
        if isinstance(bucket, QuotaScopeID):
            path = self._scope_path(bucket)
        else:
            path = self._vfolder_path(bucket)
        usage = await self._scan(path)
        self._usage[bucket] = (now, usage.used_bytes)
        return usage.used_bytes

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
