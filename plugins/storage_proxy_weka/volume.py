"""The ``weka`` backend: WekaFS (native client or NFS), directory quotas through the REST API.

A quota scope is its directory with a WEKA directory quota, addressed by the directory's inode id
(``resolvePath``): with the scope's hard limit, or "unlimited" when it has none, so the quota
still counts usage; one paged listing of the file system's quotas answers for every scope seen.
WEKA nests directory quotas (up to four levels), so a vfolder limit becomes a quota of its own.

Options: the mount options (``check-mount``, ``expected-fstypes`` default
``["wekafs", "nfs", "nfs4"]``, …) plus ``endpoint`` (``https://weka:14000``), ``user``,
``password``, ``organization`` ("Root"), ``fs-name`` (the WEKA file system mounted at the volume
path), ``fs-path`` ("/": where the volume path is inside that file system), ``verify-ssl``
(true), ``ca-file``, ``request-timeout``, ``quota-usage-ttl``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import trafaret as t

from storage_proxy.core.types import FSUsage
from storage_proxy.volumes.rest import RestClient, number
from storage_proxy.volumes.vendorquota import QuotaTarget, VendorQuota, VendorQuotas
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_nfs import NfsVolume, nfs_options

from .client import DirectoryQuota, WekaClient, WekaLogin

WEKA_OPTIONS: dict[t.Key, t.Trafaret] = {
    **nfs_options(["wekafs", "nfs", "nfs4"]),
    t.Key("endpoint"): t.URL,
    t.Key("user"): t.String(),
    t.Key("password"): t.String(allow_blank=True),
    t.Key("organization", default="Root"): t.String(),
    t.Key("fs-name"): t.String(),
    t.Key("fs-path", default="/"): t.Regexp(r"^/.*$"),
    t.Key("verify-ssl", default=True): t.ToBool(),
    t.Key("ca-file", default=None): t.Null | t.String(),
    t.Key("request-timeout", default=30.0): t.ToFloat(gt=0),
}


def _quota(found: DirectoryQuota) -> VendorQuota:
    return VendorQuota(str(found.inode_id), found.hard_limit, found.used_bytes)


class WekaQuotas(VendorQuotas):
    vendor: ClassVar[str] = "WEKA"
    nests: ClassVar[bool] = True
    lists_all: ClassVar[bool] = True

    def __init__(self, client: WekaClient, fs_name: str, fs_path: str) -> None:
        self.client = client
        self.fs_name = fs_name
        self.fs_path = fs_path.rstrip("/")
        self.fs_uid = ""  # found by the start-up check
        self._inodes: dict[str, int] = {}  # relpath -> inode id (stable while the directory is)

    async def open(self) -> None:
        await self.client.rest.open()

    async def close(self) -> None:
        await self.client.rest.close()

    async def missing(self) -> list[str]:
        found = [fs for fs in await self.client.file_systems() if fs.get("name") == self.fs_name]
        if not found:
            return [f"WEKA at {self.client.endpoint} has no file system {self.fs_name!r}"]
        self.fs_uid = str(found[0].get("uid", ""))
        if await self.client.resolve(self.fs_uid, self.fs_path or "/") is None:
            return [f"WEKA file system {self.fs_name!r} has no directory {self.fs_path or '/'}"]
        await self.client.quotas(self.fs_uid)  # the quota API answers for this file system
        return []

    async def inode(self, target: QuotaTarget) -> int | None:
        known = self._inodes.get(target.relpath)
        if known is None:
            known = await self.client.resolve(self.fs_uid, f"{self.fs_path}/{target.relpath}")
            if known is not None:
                self._inodes[target.relpath] = known
        return known

    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        """Every quota of the file system whose directory this volume knows, one listing."""
        await self.inode(wanted)
        by_inode = {inode: relpath for relpath, inode in self._inodes.items()}
        return {
            by_inode[q.inode_id]: _quota(q)
            for q in await self.client.quotas(self.fs_uid)
            if q.inode_id in by_inode
        }

    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        inode = await self.inode(target)
        if inode is None:
            raise self.client.rest.malformed(f"no inode for {target.relpath}", "resolvePath")
        await self.client.set_quota(self.fs_uid, inode, limit_bytes)

    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        await self.client.set_quota(self.fs_uid, int(quota.handle), limit_bytes)

    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        await self.client.delete_quota(self.fs_uid, int(quota.handle))
        self._inodes.pop(target.relpath, None)

    async def discard_scope(self, target: QuotaTarget) -> None:
        self._inodes.pop(target.relpath, None)
        await super().discard_scope(target)

    async def capacity(self) -> FSUsage:
        fs: dict[str, Any] = await self.client.file_system(self.fs_uid)
        rest = self.client.rest
        return FSUsage(
            capacity_bytes=number(rest, fs.get("total_budget"), "total_budget"),
            used_bytes=number(rest, fs.get("used_total"), "used_total"),
        )


class WekaVolume(VendorQuotaVolume, NfsVolume):
    backend_name = "weka"
    options_schema = t.Dict(WEKA_OPTIONS)

    def make_quota_api(self) -> WekaQuotas:
        opts = self.options
        rest = RestClient(
            "WEKA",
            opts["endpoint"],
            WekaLogin(opts["user"], opts["password"], opts["organization"]),
            verify_ssl=opts["verify-ssl"],
            ca_file=opts["ca-file"],
            request_timeout=opts["request-timeout"],
        )
        return WekaQuotas(WekaClient(rest), opts["fs-name"], opts["fs-path"])
