"""The ``dellemc-onefs`` backend: PowerScale (Isilon) OneFS over NFS, SmartQuotas directory quotas.

A quota scope is its directory (``<path>/<scope-hex>``, on the cluster ``<ifs-path>/<scope-hex>``)
with a directory quota: enforced with a hard threshold when the scope has a limit, an accounting
quota otherwise, so usage (``usage.fslogical``) always comes from the cluster; one paged listing
of the quotas under ``ifs-path`` answers for every scope.  OneFS nests directory quotas, so a
vfolder limit (``PATCH /folder/quota``) becomes a quota of its own on the vfolder's directory.

Options: the NFS ones plus ``endpoint`` (``https://cluster:8080``), ``user``, ``password``,
``ifs-path`` (the exported directory the volume path mounts, e.g. ``/ifs/data/vfroot``),
``api-version`` ("12", for ``/platform/<v>/quota/quotas``), ``verify-ssl`` (true), ``ca-file``,
``request-timeout``, ``quota-usage-ttl``.
"""

from __future__ import annotations

from typing import ClassVar

import trafaret as t

from storage_proxy.core.types import FSUsage
from storage_proxy.volumes.rest import BasicAuth, RestClient
from storage_proxy.volumes.vendorquota import QuotaTarget, VendorQuota, VendorQuotas
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_nfs import NFS_OPTIONS, NfsVolume

from .client import LICENSED, DirectoryQuota, OneFSClient

ONEFS_OPTIONS: dict[t.Key, t.Trafaret] = {
    **NFS_OPTIONS,
    t.Key("endpoint"): t.URL,
    t.Key("user"): t.String(),
    t.Key("password"): t.String(allow_blank=True),
    t.Key("ifs-path"): t.Regexp(r"^/ifs(/[^/]+)+$"),
    t.Key("api-version", default="12"): t.Regexp(r"^\d+$"),
    t.Key("verify-ssl", default=True): t.ToBool(),
    t.Key("ca-file", default=None): t.Null | t.String(),
    t.Key("request-timeout", default=30.0): t.ToFloat(gt=0),
}


def _quota(found: DirectoryQuota) -> VendorQuota:
    return VendorQuota(found.id, found.hard_limit, found.used_bytes)


class OneFSQuotas(VendorQuotas):
    vendor: ClassVar[str] = "PowerScale OneFS"
    nests: ClassVar[bool] = True
    lists_all: ClassVar[bool] = True

    def __init__(self, client: OneFSClient, ifs_path: str) -> None:
        self.client = client
        self.base = ifs_path.rstrip("/")

    def ifs_path(self, target: QuotaTarget) -> str:
        return f"{self.base}/{target.relpath}"

    async def open(self) -> None:
        await self.client.rest.open()

    async def close(self) -> None:
        await self.client.rest.close()

    async def missing(self) -> list[str]:
        await self.client.cluster_name()  # reachable, and the credentials are accepted
        where = f"OneFS at {self.client.endpoint}"
        missing = []
        status = await self.client.quota_license()
        if status not in LICENSED:
            missing.append(f"{where}: SmartQuotas is not licensed (license status {status!r})")
        if not await self.client.directory_exists(self.base):
            missing.append(f"{where} has no directory {self.base} (the ifs-path option)")
        return missing

    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        """Every directory quota under ``ifs-path`` (scopes and vfolders), one paged listing."""
        prefix = self.base + "/"
        return {
            q.path[len(prefix) :]: _quota(q)
            for q in await self.client.directory_quotas(self.base)
            if q.path.startswith(prefix)
        }

    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        await self.client.create_directory_quota(self.ifs_path(target), limit_bytes)

    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        await self.client.set_hard_limit(quota.handle, limit_bytes)

    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        await self.client.delete_quota(quota.handle)

    async def capacity(self) -> FSUsage:
        capacity, used = await self.client.statfs()
        return FSUsage(capacity_bytes=capacity, used_bytes=used)


class OneFSVolume(VendorQuotaVolume, NfsVolume):
    backend_name = "dellemc-onefs"
    options_schema = t.Dict(ONEFS_OPTIONS)

    def make_quota_api(self) -> OneFSQuotas:
        opts = self.options
        rest = RestClient(
            "OneFS",
            opts["endpoint"],
            BasicAuth(opts["user"], opts["password"]),
            verify_ssl=opts["verify-ssl"],
            ca_file=opts["ca-file"],
            request_timeout=opts["request-timeout"],
        )
        return OneFSQuotas(OneFSClient(rest, opts["api-version"]), opts["ifs-path"])
