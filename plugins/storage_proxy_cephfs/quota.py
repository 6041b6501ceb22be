"""Native CephFS quotas: limits are ``ceph.quota.max_bytes`` xattrs, usage is ``ceph.dir.rbytes``.

A quota scope is a directory carrying the limit; a vfolder inside it may carry its own (Ceph
enforces nested quota realms).  Ceph refuses writes past a limit itself (EDQUOT, overshooting by
at most about one write), so the proxy holds no reservations: it only refuses up front a write
whose declared size cannot fit the headroom read from the same xattrs.  Built on the public
:class:`QuotaModel` interface alone, so nothing here depends on the proxy model's internals.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from storage_proxy.core.errors import (
    QuotaExceeded,
    QuotaScopeExists,
    QuotaScopeNotFound,
    VFolderNotFound,
)
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID, VFolderUsage
from storage_proxy.volumes.abc import QuotaModel, WriteReservation
from storage_proxy.volumes.books import QuotaBook

from . import xattrs

log = logging.getLogger(__name__)

#: Seconds to wait for the Ceph client to enforce a new limit (it learns of it asynchronously).
ENFORCE_TIMEOUT = 5.0

Bucket: TypeAlias = QuotaScopeID | VFolderID


async def rstat_usage(path: Path) -> VFolderUsage:
    """Usage of a directory tree in O(1) (lags writes by a second or two: lazy rstats)."""
    files, nbytes = await asyncio.to_thread(xattrs.rstats, path)
    return VFolderUsage(files, nbytes)


#: How far a stream may run past the headroom before the proxy cuts it itself: Ceph overshoots a
#: limit by about one write (the sink writes 4 MiB batches), so its own EDQUOT normally comes
#: first; the proxy stops only what Ceph failed to (ceph-fuse does not always enforce a quota
#: set several directory levels above the written file).
SAFETY_SLACK = 8 << 20
_UNSET = object()


class HeadroomReservation(WriteReservation):
    """The write-side of a native quota: checks a declared size, holds nothing."""

    def __init__(self, model: CephQuotaModel, vfid: VFolderID) -> None:
        super().__init__(vfid)
        self._model = model
        self._budget: object = _UNSET

    async def reserve(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        remaining = await self._model.headroom(self._vfid)
        if remaining is not None and nbytes > remaining:
            raise QuotaExceeded(
                f"{self._vfid} has {remaining} bytes left; {nbytes} were declared",
                remaining_bytes=remaining,
            )

    async def consume(self, nbytes: int) -> None:
        """Ceph refuses a write past the limit (EDQUOT → QuotaExceeded); this is the net below."""
        self.used += nbytes
        if self._budget is _UNSET:
            self._budget = await self._model.headroom(self._vfid)
        budget = self._budget
        if isinstance(budget, int) and self.used > budget + SAFETY_SLACK:
            raise QuotaExceeded(
                f"{self._vfid} has {budget} bytes of quota left; the write went past it",
                remaining_bytes=budget,
            )


class CephQuotaModel(QuotaModel):
    """Quota scopes and per-vfolder limits kept by Ceph itself, in xattrs."""

    def __init__(
        self,
        volume_name: str,
        scope_path: Callable[[QuotaScopeID], Path],
        vfolder_path: Callable[[VFolderID], Path],
        metadata: QuotaBook,
    ) -> None:
        self._volume = volume_name
        self._scope_path = scope_path
        self._vfolder_path = vfolder_path
        self._metadata = metadata

    def _path(self, bucket: Bucket) -> Path:
        if isinstance(bucket, QuotaScopeID):
            return self._scope_path(bucket)
        return self._vfolder_path(bucket)

    async def _set(self, bucket: Bucket, limit: int | None) -> None:
        """Set (or remove) the limit, then wait until this client enforces it."""
        path = self._path(bucket)
        try:
            await asyncio.to_thread(xattrs.set_limit, path, limit)
            if limit and not await asyncio.to_thread(
                xattrs.wait_enforced, path, limit, ENFORCE_TIMEOUT
            ):
                log.warning("the Ceph client does not enforce the new limit of %s yet", bucket)
        except FileNotFoundError:
            if isinstance(bucket, VFolderID):
                raise VFolderNotFound(f"no vfolder {bucket}") from None
            raise QuotaScopeNotFound(f"quota scope {bucket} does not exist") from None

    async def _limit(self, bucket: Bucket) -> int | None:
        return await asyncio.to_thread(xattrs.get_limit, self._path(bucket))

    # -- scopes ------------------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        try:
            await asyncio.to_thread(os.makedirs, self._scope_path(qsid))
        except FileExistsError:
            raise QuotaScopeExists(f"quota scope {qsid} already exists") from None
        if config is not None:
            await self._set(qsid, config.limit_bytes)

    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await asyncio.to_thread(self._scope_path(qsid).is_dir)

    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        if not await self.quota_scope_exists(qsid):
            return None
        usage = await rstat_usage(self._scope_path(qsid))
        return QuotaUsage(used_bytes=usage.used_bytes, limit_bytes=await self._limit(qsid))

    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        """Set the scope's limit; ``0`` removes it (Ceph cannot express a zero quota)."""
        await self._set(qsid, config.limit_bytes)

    async def unset_quota(self, qsid: QuotaScopeID) -> None:
        await self._set(qsid, None)

    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None:
        """Drop the limit (the directory goes with its last vfolder, as on every POSIX volume)."""
        if await self.quota_scope_exists(qsid):
            await self._set(qsid, None)
        await self._metadata.delete_quota_scope(self._volume, str(qsid))

    # -- per-vfolder limits ------------------------------------------------------------------
    async def set_vfolder_limit(self, vfid: VFolderID, limit_bytes: int | None) -> None:
        """Apply a vfolder's own limit natively (a nested quota realm); None or 0 removes it."""
        await self._set(vfid, limit_bytes)

    async def get_vfolder_limit(self, vfid: VFolderID) -> int | None:
        return await self._limit(vfid)

    # -- accounting --------------------------------------------------------------------------
    async def remaining_bytes(self, qsid: QuotaScopeID) -> int | None:
        return await self._remaining(qsid)

    async def headroom(self, vfid: VFolderID) -> int | None:
        known = [
            r
            for r in (await self._remaining(vfid.quota_scope_id), await self._remaining(vfid))
            if r is not None
        ]
        return min(known) if known else None

    async def _remaining(self, bucket: Bucket) -> int | None:
        """Limit minus rbytes minus the declared lengths of open uploads into the bucket."""
        limit = await self._limit(bucket)
        if limit is None:
            return None
        used = (await rstat_usage(self._path(bucket))).used_bytes
        prefix = f"{bucket}/" if isinstance(bucket, QuotaScopeID) else str(bucket)
        held = await self._metadata.reserved_upload_bytes(self._volume, prefix)
        return max(0, limit - used - held)

    def reservation(
        self, vfid: VFolderID, *, counts_as_written: bool = True
    ) -> HeadroomReservation:
        return HeadroomReservation(self, vfid)
