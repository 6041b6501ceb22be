"""Native XFS project quotas: one project per quota scope.

Limits live in the filesystem (``xfs_quota limit``) and usage comes from one ``xfs_quota report``
for every scope at once (cached for ``quota-usage-ttl``).  It extends the proxy model rather than
replacing it: writes through the proxy still take reservations, now checked against the kernel's
numbers, so a declared size that cannot fit is refused before any byte is written; the kernel
enforces the same limit on writes that bypass the proxy.  Vfolder limits stay proxy-enforced.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage_proxy.core.errors import QuotaScopeExists
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID
from storage_proxy.volumes.quota import Bucket, ProxyQuotaModel

from .projects import ProjectRegistry
from .xfsquota import ProjectQuota, XfsQuota


class XfsQuotaModel(ProxyQuotaModel):
    def __init__(
        self,
        volume_name: str,
        scope_path: Callable[[QuotaScopeID], Path],
        *args: Any,
        registry: ProjectRegistry,
        xfs: XfsQuota,
        usage_ttl: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(volume_name, scope_path, *args, usage_ttl=usage_ttl, **kwargs)
        self.volume_name = volume_name
        self.scope_path = scope_path
        self.report_ttl = usage_ttl
        self.registry = registry
        self.xfs = xfs
        self._report: tuple[float, dict[int, ProjectQuota]] | None = None
        self._report_lock = asyncio.Lock()

    def project_name(self, qsid: QuotaScopeID) -> str:
        """Unique across volumes sharing ``/etc/projid``: ``sp-<volume>-<scope-hex>``."""
        return f"sp-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.volume_name)}-{qsid.pathname}"

    # -- scope lifecycle ---------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        path = self.scope_path(qsid)
        try:
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=False)
        except FileExistsError:
            raise QuotaScopeExists(f"quota scope {qsid} already exists") from None
        try:
            prid = await self._project(qsid, path)
            if config is not None:
                await self.xfs.set_limit(prid, config.limit_bytes)
        except BaseException:
            await self.registry.unregister(self.project_name(qsid))
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
            raise
        self._report = None

    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        if not await self.quota_scope_exists(qsid):
            return None
        entry = await self._entry(qsid, fresh=True)
        if entry is None:
            used, _ = await self._used_bytes(qsid, fresh=True)
            return QuotaUsage(used_bytes=used, limit_bytes=None)
        return QuotaUsage(used_bytes=entry.used_bytes, limit_bytes=entry.hard_limit_bytes)

    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        prid = await self._project(qsid, self.scope_path(qsid))
        await self.xfs.set_limit(prid, config.limit_bytes)
        self._report = None

    async def unset_quota(self, qsid: QuotaScopeID) -> None:
        prid = await self.registry.lookup(self.project_name(qsid))
        if prid is not None:
            await self.xfs.set_limit(prid, None)
        self._report = None

    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None:
        """Drop the limit (a dquot outlives its directory) and both registry entries."""
        prid = await self.registry.lookup(self.project_name(qsid))
        if prid is not None:
            await self.xfs.set_limit(prid, None)
            await self.registry.unregister(self.project_name(qsid))
        await super().delete_quota_scope(qsid)
        self._report = None

    def invalidate(self, vfid: VFolderID) -> None:
        super().invalidate(vfid)
        self._report = None

    # -- the numbers the proxy's reservations are checked against ----------------------------
    async def _limit(self, bucket: Bucket) -> int | None:
        if isinstance(bucket, QuotaScopeID):
            entry = await self._entry(bucket)
            return entry.hard_limit_bytes if entry else None
        return await super()._limit(bucket)

    async def _used_bytes(self, bucket: Bucket, *, fresh: bool = False) -> tuple[int, float]:
        """A quota report may be up to a TTL old: writes from then on count on top of it."""
        if isinstance(bucket, QuotaScopeID):
            entry = await self._entry(bucket, fresh=fresh)
            if entry is not None:
                return entry.used_bytes, time.time() - self._usage_ttl
        return await super()._used_bytes(bucket, fresh=fresh)

    # -- helpers -----------------------------------------------------------------------------
    async def _project(self, qsid: QuotaScopeID, path: Path) -> int:
        """The scope's project id; allocated, registered and assigned to its tree if new."""
        name = self.project_name(qsid)
        prid = await self.registry.lookup(name)
        if prid is None:
            prid = await self.registry.register(name, path)
            await self.xfs.assign_project(path, prid)
        return prid

    async def _entry(self, qsid: QuotaScopeID, *, fresh: bool = False) -> ProjectQuota | None:
        prid = await self.registry.lookup(self.project_name(qsid))
        if prid is None:
            return None
        report = await self.report(fresh=fresh)
        return report.get(prid, ProjectQuota(prid, 0, None, None))

    async def report(self, *, fresh: bool = False) -> dict[int, ProjectQuota]:
        """One ``xfs_quota report`` for all scopes, shared by callers within the TTL."""
        async with self._report_lock:
            now = time.monotonic()
            if self._report and not fresh and now - self._report[0] < self.report_ttl:
                return self._report[1]
            report = await self.xfs.report()
            self._report = (now, report)
            return report
