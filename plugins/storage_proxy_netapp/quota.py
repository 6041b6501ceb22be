"""Quota scopes as ONTAP qtrees with tree quota rules; usage from quota reports.

A scope is a qtree named by the scope's hex id, so on the NFS mount it is the directory the
POSIX layout expects (``<volume>/<scope-hex>``).  Every scope has a tree rule -- with limits, or
without (a tracking rule) so the quota report always lists it; one report call answers for every
qtree (``fast-usage``).  Like the XFS model it extends the proxy model: writes through the proxy
reserve against the filer's numbers, so a declared size that cannot fit is refused up front;
the filer enforces the same limit on writes that bypass the proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage_proxy.core.errors import QuotaScopeExists, QuotaScopeNotFound
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID
from storage_proxy.volumes.quota import Bucket, ProxyQuotaModel

from .client import Json, OntapClient
from .errors import OntapError


class NetAppQuotaModel(ProxyQuotaModel):
    def __init__(
        self,
        volume_name: str,
        scope_path: Callable[[QuotaScopeID], Path],
        *args: Any,
        client: OntapClient,
        svm: str,
        ontap_volume: str,
        usage_ttl: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(volume_name, scope_path, *args, usage_ttl=usage_ttl, **kwargs)
        self.client = client
        self.svm = svm
        self.ontap_volume = ontap_volume
        self.report_ttl = usage_ttl
        self.volume_uuid = ""  # set by the volume's init
        self._reports: tuple[float, dict[str, Json]] | None = None
        self._reports_lock = asyncio.Lock()

    # -- scope lifecycle ---------------------------------------------------------------------
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None:
        name = qsid.pathname
        if await self.client.find_qtree(self.svm, self.ontap_volume, name):
            raise QuotaScopeExists(f"quota scope {qsid} already exists")
        await self.client.create_qtree(self.svm, self.ontap_volume, name)
        try:
            limit = config.limit_bytes if config else None
            await self.client.create_tree_rule(self.svm, self.ontap_volume, name, limit)
        except OntapError:
            await self._delete_qtree(name)
            raise
        self._reports = None

    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await self.client.find_qtree(self.svm, self.ontap_volume, qsid.pathname) is not None

    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        if not await self.quota_scope_exists(qsid):
            return None
        rule = await self.client.find_tree_rule(self.svm, self.ontap_volume, qsid.pathname)
        limit = (rule or {}).get("space", {}).get("hard_limit") or None
        used, _ = await self._used_bytes(qsid, fresh=True)
        return QuotaUsage(used_bytes=used, limit_bytes=limit)

    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        rule = await self._rule(qsid)
        await self.client.set_rule_limit(rule["uuid"], config.limit_bytes)
        self._reports = None

    async def unset_quota(self, qsid: QuotaScopeID) -> None:
        """Replace the rule by a tracking rule (ONTAP has no "no limit" value to PATCH in)."""
        rule = await self._rule(qsid)
        await self.client.delete_rule(rule["uuid"])
        await self.client.create_tree_rule(self.svm, self.ontap_volume, qsid.pathname, None)
        self._reports = None

    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None:
        rule = await self.client.find_tree_rule(self.svm, self.ontap_volume, qsid.pathname)
        if rule is not None:
            await self.client.delete_rule(rule["uuid"])
        await self._delete_qtree(qsid.pathname)
        await super().delete_quota_scope(qsid)
        self._reports = None

    def invalidate(self, vfid: VFolderID) -> None:
        super().invalidate(vfid)
        self._reports = None

    # -- the numbers the proxy's reservations are checked against ----------------------------
    async def _limit(self, bucket: Bucket) -> int | None:
        if isinstance(bucket, QuotaScopeID):
            record = (await self.reports()).get(bucket.pathname)
            return (record or {}).get("space", {}).get("hard_limit") or None
        return await super()._limit(bucket)

    async def _used_bytes(self, bucket: Bucket, *, fresh: bool = False) -> tuple[int, float]:
        """A quota report may be up to a TTL old: writes from then on count on top of it."""
        if isinstance(bucket, QuotaScopeID):
            record = (await self.reports(fresh=fresh)).get(bucket.pathname)
            if record is not None:
                used = int(record.get("space", {}).get("used", {}).get("total", 0))
                return used, time.time() - max(self._usage_ttl, self.report_ttl)
        return await super()._used_bytes(bucket, fresh=fresh)

    async def reports(self, *, fresh: bool = False) -> dict[str, Json]:
        """Tree quota reports of every qtree, one call shared by callers within the TTL."""
        async with self._reports_lock:
            now = time.monotonic()
            if self._reports and not fresh and now - self._reports[0] < self.report_ttl:
                return self._reports[1]
            reports = await self.client.tree_reports(self.svm, self.ontap_volume)
            self._reports = (now, reports)
            return reports

    # -- helpers -----------------------------------------------------------------------------
    async def _rule(self, qsid: QuotaScopeID) -> Json:
        rule = await self.client.find_tree_rule(self.svm, self.ontap_volume, qsid.pathname)
        if rule is not None:
            return rule
        if not await self.quota_scope_exists(qsid):
            raise QuotaScopeNotFound(f"quota scope {qsid} does not exist")
        await self.client.create_tree_rule(self.svm, self.ontap_volume, qsid.pathname, None)
        rule = await self.client.find_tree_rule(self.svm, self.ontap_volume, qsid.pathname)
        assert rule is not None
        return rule

    async def _delete_qtree(self, name: str) -> None:
        qtree = await self.client.find_qtree(self.svm, self.ontap_volume, name)
        if qtree is not None:
            await self.client.delete_qtree(self.volume_uuid, int(qtree["id"]))
