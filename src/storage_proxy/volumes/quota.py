"""Proxy-enforced quotas: limits kept in the metadata store, usage from scans, writes reserved.

Used where the storage cannot enforce limits itself (plain POSIX, NFS, S3, XFS without kernel
quotas).  Every write through the proxy takes a :class:`Reservation` first: the declared size is
refused up front if it cannot fit, a stream that outgrows it is cut off, and concurrent writes into
one scope count each other's in-flight bytes, so together they can never pass the limit.
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
from ..types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderUsage
from .abc import QuotaModel

_GROW_STEP = 8 << 20


class Reservation:
    """Bytes promised to one write; grows on demand while the scope has room."""

    def __init__(self, model: ProxyQuotaModel | None, qsid: QuotaScopeID) -> None:
        self._model = model
        self._qsid = qsid
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
        if self._model is not None:
            self._model._release(self._qsid, self.reserved)
            if exc_type is None:
                self._model.record_written(self._qsid, self.used)

    async def reserve(self, nbytes: int) -> None:
        """Reserve ``nbytes`` more up front (a declared size); QuotaExceeded if it cannot fit."""
        if self._model is not None and nbytes > 0:
            await self._model._grow(self._qsid, nbytes)
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
        metadata: MetadataStore,
        scan: Callable[[Path], Awaitable[VFolderUsage]],
        *,
        usage_ttl: float = 30.0,
    ) -> None:
        self._volume = volume_name
        self._scope_path = scope_path
        self._metadata = metadata
        self._scan = scan
        self._usage_ttl = usage_ttl
        self._usage: dict[QuotaScopeID, tuple[float, int]] = {}
        self._inflight: defaultdict[QuotaScopeID, int] = defaultdict(int)
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
        limit = await self._metadata.get_quota_limit(self._volume, str(qsid))
        if limit is None:
            return None
        used = await self._used_bytes(qsid)
        return max(0, limit - used - self._inflight[qsid])

    def reservation(self, qsid: QuotaScopeID) -> Reservation:
        return Reservation(self, qsid)

    def record_written(self, qsid: QuotaScopeID, nbytes: int) -> None:
        cached = self._usage.get(qsid)
        if cached is not None:
            self._usage[qsid] = (cached[0], max(0, cached[1] + nbytes))

    def invalidate(self, qsid: QuotaScopeID) -> None:
        self._usage.pop(qsid, None)

    async def _used_bytes(self, qsid: QuotaScopeID, *, fresh: bool = False) -> int:
        cached = self._usage.get(qsid)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[0] < self._usage_ttl:
            return cached[1]
        usage = await self._scan(self._scope_path(qsid))
        self._usage[qsid] = (now, usage.used_bytes)
        return usage.used_bytes

    async def _grow(self, qsid: QuotaScopeID, nbytes: int) -> None:
        async with self._lock:  # check-and-reserve must not interleave between writers
            remaining = await self.remaining_bytes(qsid)
            if remaining is not None and nbytes > remaining:
                raise QuotaExceeded(
                    f"quota scope {qsid} has {remaining} bytes left; {nbytes} more were needed",
                    remaining_bytes=remaining,
                )
            self._inflight[qsid] += nbytes

    def _release(self, qsid: QuotaScopeID, nbytes: int) -> None:
        self._inflight[qsid] -= nbytes
        if self._inflight[qsid] <= 0:
            del self._inflight[qsid]
