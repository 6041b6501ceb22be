"""Quotas kept by the storage itself, one vendor quota object per scope (and per vfolder where
the product nests quotas), read and written through the vendor's API or tools.

A backend supplies a :class:`VendorQuotas` (its client: directory quotas on OneFS, Weka and VAST,
a file system per scope on FlashBlade, a Lustre project per scope on EXAScaler) and the rules are
here, once:

* a quota scope is its directory on the mount plus its quota object; a scope created without a
  limit still gets a *tracking* object (no limit, usage counted) so usage always comes from the
  vendor, never from a walk of the tree;
* the limit of a scope is the vendor's hard limit (the vendor is the only place it is kept);
* writes through the proxy take the proxy's reservations (:mod:`.quota`) checked against the
  vendor's numbers: a declared size that cannot fit is refused before a byte is written, and a
  stream is cut off before it passes the limit.  The storage enforces the same limit on writes
  that bypass the proxy (containers that mount the folder);
* a vendor answer may be up to ``quota-usage-ttl`` old; writes recorded since then count on top.
  Listings that answer for every scope at once are used where the vendor has them.
"""

from __future__ import annotations

import asyncio
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..core.errors import InvalidParameter, QuotaScopeExists, QuotaScopeNotFound
from ..core.types import FSUsage, QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID, VFolderUsage
from .books import QuotaBook
from .quota import Bucket, ProxyQuotaModel
from .rest import RestRejected


@dataclass(frozen=True, slots=True)
class VendorQuota:
    """One quota object as the vendor reports it."""

    #: The vendor's handle for it (a quota id, an inode number, a file system or project id).
    handle: str
    #: The hard limit; ``None``: a tracking object (usage counted, nothing enforced).
    limit_bytes: int | None
    #: Bytes the vendor counts; ``None`` while it has not finished counting.
    used_bytes: int | None


@dataclass(frozen=True, slots=True)
class QuotaTarget:
    """What a quota object is for: a scope or a vfolder, and its directory."""

    bucket: Bucket
    #: Its directory on this host's mount.
    path: Path
    #: The same directory below the volume root, POSIX separators (``<scope-hex>[/aa/bb/…]``).
    relpath: str

    @property
    def is_scope(self) -> bool:
        return isinstance(self.bucket, QuotaScopeID)


class VendorQuotas(ABC):
    """One vendor's quota objects, addressed by :class:`QuotaTarget`: what a backend writes."""

    #: The product's name, for messages.
    vendor: ClassVar[str] = ""
    #: Whether a quota may sit inside another (then a vfolder may carry its own).
    nests: ClassVar[bool] = False
    #: Whether :meth:`report` answers for every target of the volume in one call.
    lists_all: ClassVar[bool] = False

    async def open(self) -> None:
        """Connect (the first request may log in)."""

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def missing(self) -> list[str]:
        """The start-up check: everything that stops quotas here, in words an operator can act
        on (empty when all is in place).  Raises the vendor's errors (unreachable, refused)."""

    @abstractmethod
    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        """Quota objects by ``relpath``: ``wanted``'s (absent if it has none) and, where the
        vendor lists them in one call (``lists_all``), every other one of the volume."""

    @abstractmethod
    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        """A quota object on the target (``None``: tracking only)."""

    @abstractmethod
    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        """Change the hard limit (``None``: remove it, keep counting)."""

    @abstractmethod
    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        """Delete the quota object (a missing one is not an error)."""

    async def capacity(self) -> FSUsage | None:
        """Capacity and use of the whole volume, from the vendor (``None``: ask the mount)."""
        return None

    # -- the scope's own storage: a directory on the mount, unless the vendor makes it -----------
    async def scope_exists(self, target: QuotaTarget) -> bool:
        return await asyncio.to_thread(target.path.is_dir)

    async def create_scope(self, target: QuotaTarget) -> None:
        try:
            await asyncio.to_thread(target.path.mkdir, parents=True)
        except FileExistsError:
            raise QuotaScopeExists(f"quota scope {target.bucket} already exists") from None

    async def discard_scope(self, target: QuotaTarget) -> None:
        """Undo :meth:`create_scope` after a failure (the scope holds nothing yet)."""
        await asyncio.to_thread(_rmdir_quietly, target.path)

    async def delete_scope(self, target: QuotaTarget) -> None:
        """What deleting the scope removes besides its quota object: nothing by default (the
        directory goes with its last vfolder, as on every POSIX volume)."""


def _rmdir_quietly(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


class VendorQuotaModel(ProxyQuotaModel):
    """Scope limits and usage from the vendor; the proxy's ledger checks writes against them."""

    def __init__(
        self,
        volume_name: str,
        scope_path: Callable[[QuotaScopeID], Path],
        vfolder_path: Callable[[VFolderID], Path],
        metadata: QuotaBook,
        scan: Callable[[Path], Awaitable[VFolderUsage]],
        *,
        api: VendorQuotas,
        usage_ttl: float = 30.0,
    ) -> None:
        super().__init__(volume_name, scope_path, vfolder_path, metadata, scan, usage_ttl=usage_ttl)
        self.api = api
        self._scope_path = scope_path
        self._vfolder_path = vfolder_path
        self.report_ttl = usage_ttl
        self._known: dict[str, tuple[float, VendorQuota | None]] = {}
        self._lock = asyncio.Lock()

    # -- targets -------------------------------------------------------------------------------
    def target(self, bucket: Bucket) -> QuotaTarget:
        if isinstance(bucket, QuotaScopeID):
            return QuotaTarget(bucket, self._scope_path(bucket), bucket.pathname)
        return QuotaTarget(bucket, self._vfolder_path(bucket), "/".join(bucket.relative_parts))

    async def quota(self, target: QuotaTarget, *, fresh: bool = False) -> VendorQuota | None:
        """The target's quota object as the vendor last reported it (within the TTL)."""
        async with self._lock:
            now = time.monotonic()
            seen = self._known.get(target.relpath)
            if seen is not None and not fresh and now - seen[0] < self.report_ttl:
                return seen[1]
            report = await self.api.report(target)
            if self.api.lists_all:
                self._known = {key: (now, q) for key, q in report.items()}
            found = report.get(target.relpath)
            self._known[target.relpath] = (now, found)
            return found

    def forget(self, target: QuotaTarget | None = None) -> None:
        if target is None:
            self._known.clear()
        else:
            self._known.pop(target.relpath, None)

    # -- scope lifecycle -----------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        target = self.target(qsid)
        if await self.api.scope_exists(target):
            raise QuotaScopeExists(f"quota scope {qsid} already exists")
        await self.api.create_scope(target)
        try:
            await self._create(target, config.limit_bytes if config else None)
        except BaseException:
            await asyncio.shield(self.api.discard_scope(target))
            raise
        finally:
            self.forget(target)

    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await self.api.scope_exists(self.target(qsid))

    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        target = self.target(qsid)
        if not await self.api.scope_exists(target):
            return None
        quota = await self.quota(target, fresh=True)
        used, _ = await self._used_bytes(qsid)
        return QuotaUsage(used_bytes=used, limit_bytes=quota.limit_bytes if quota else None)

    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        await self._set(self.target(qsid), config.limit_bytes or None)

    async def unset_quota(self, qsid: QuotaScopeID) -> None:
        await self._set(self.target(qsid), None)

    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None:
        target = self.target(qsid)
        quota = await self.quota(target, fresh=True)
        if quota is not None:
            await self.api.remove(target, quota)
        self.forget(target)
        await self.api.delete_scope(target)
        await super().delete_quota_scope(qsid)

    # -- per-vfolder quota objects (products that nest quotas) ---------------------------------
    async def set_vfolder_limit(self, vfid: VFolderID, limit_bytes: int | None) -> None:
        """Give the vfolder its own quota object (``None`` or 0: remove it)."""
        target = self.target(vfid)
        quota = await self.quota(target, fresh=True)
        try:
            if not limit_bytes:
                if quota is not None:
                    await self.api.remove(target, quota)
            elif quota is None:
                await self.api.create(target, limit_bytes)
            else:
                await self.api.set_limit(target, quota, limit_bytes)
        except RestRejected as e:
            raise InvalidParameter(f"{self.api.vendor} refused the limit of {vfid}: {e}") from e
        finally:
            self.forget(target)

    async def drop_vfolder_quota(self, vfid: VFolderID) -> None:
        target = self.target(vfid)
        quota = await self.quota(target, fresh=True)
        if quota is not None:
            await self.api.remove(target, quota)
        self.forget(target)

    def invalidate(self, vfid: VFolderID) -> None:
        super().invalidate(vfid)
        self.forget(self.target(vfid.quota_scope_id))
        self.forget(self.target(vfid))

    # -- the numbers the proxy's reservations are checked against ------------------------------
    async def _limit(self, bucket: Bucket) -> int | None:
        if isinstance(bucket, QuotaScopeID):
            quota = await self.quota(self.target(bucket))
            return quota.limit_bytes if quota else None
        return await super()._limit(bucket)

    async def _used_bytes(self, bucket: Bucket, *, fresh: bool = False) -> tuple[int, float]:
        """The vendor's count, which may be up to a TTL old: writes from then on count on top.
        A vfolder without a quota object of its own (or on a product that does not nest them)
        is scanned, as on every POSIX volume."""
        if isinstance(bucket, VFolderID) and not self.api.nests:
            return await super()._used_bytes(bucket, fresh=fresh)
        quota = await self.quota(self.target(bucket), fresh=fresh)
        if quota is not None and quota.used_bytes is not None:
            return quota.used_bytes, time.time() - max(self._usage_ttl, self.report_ttl)
        return await super()._used_bytes(bucket, fresh=fresh)

    # -- helpers -------------------------------------------------------------------------------
    async def _create(self, target: QuotaTarget, limit: int | None) -> None:
        try:
            await self.api.create(target, limit)
        except RestRejected as e:
            raise InvalidParameter(
                f"{self.api.vendor} refused the limit of {target.bucket}: {e}"
            ) from e

    async def _set(self, target: QuotaTarget, limit: int | None) -> None:
        if not await self.api.scope_exists(target):
            raise QuotaScopeNotFound(f"quota scope {target.bucket} does not exist")
        quota = await self.quota(target, fresh=True)
        try:
            if quota is None:
                await self._create(target, limit)
            else:
                await self.api.set_limit(target, quota, limit)
        except RestRejected as e:
            raise InvalidParameter(
                f"{self.api.vendor} refused the limit of {target.bucket}: {e}"
            ) from e
        finally:
            self.forget(target)


def model_kwargs(volume: Any) -> dict[str, Any]:
    """The POSIX layout a vendor model needs, from a POSIX volume."""
    return {
        "volume_name": volume.name,
        "scope_path": volume.quota_scope_path,
        "vfolder_path": volume.vfolder_path,
        "metadata": volume.deps.books,
        "scan": getattr(volume, "scan_usage", volume.deps.scanner.scan),
    }
