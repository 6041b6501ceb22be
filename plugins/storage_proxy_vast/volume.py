"""The ``vast`` backend: VAST Data over NFS, a VMS quota on each scope's path.

A quota scope is its directory (``<path>/<scope-hex>``, on the cluster
``<vast-path>/<scope-hex>``) with a VMS quota named ``<quota-prefix><scope-hex>``: with the
scope's hard limit, or none (usage still counted); one paged listing of the quotas under
``vast-path`` answers for every scope.  Vfolder limits are the proxy's.

Options: the NFS ones plus ``endpoint`` (``https://vms``), ``user`` + ``password`` or
``api-token``, ``api-version`` ("v1"), ``vast-path`` (the exported path the volume path mounts,
e.g. ``/vfroot``), ``quota-prefix`` ("sp-"), ``verify-ssl`` (true), ``ca-file``,
``request-timeout``, ``quota-usage-ttl``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import trafaret as t

from storage_proxy.core.types import FSUsage
from storage_proxy.volumes.rest import Auth, RestClient, TokenAuth, number
from storage_proxy.volumes.vendorquota import QuotaTarget, VendorQuota, VendorQuotas
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_nfs import NFS_OPTIONS, NfsVolume

from .client import VastClient, VastLogin, VastQuota, vast_error_body

VAST_OPTIONS: dict[t.Key, t.Trafaret] = {
    **NFS_OPTIONS,
    t.Key("endpoint"): t.URL,
    t.Key("user", default=None): t.Null | t.String(),
    t.Key("password", default=None): t.Null | t.String(allow_blank=True),
    t.Key("api-token", default=None): t.Null | t.String(),
    t.Key("api-version", default="v1"): t.Regexp(r"^(v\d+|latest)$"),
    t.Key("vast-path"): t.Regexp(r"^(/[^/]+)+$"),
    t.Key("quota-prefix", default="sp-"): t.String(),
    t.Key("verify-ssl", default=True): t.ToBool(),
    t.Key("ca-file", default=None): t.Null | t.String(),
    t.Key("request-timeout", default=30.0): t.ToFloat(gt=0),
}


def _one_credential(opts: dict[str, Any]) -> dict[str, Any]:
    if bool(opts["api-token"]) == bool(opts["user"]):
        raise t.DataError({"api-token": "give either api-token or user and password"})
    if opts["user"] and opts["password"] is None:
        raise t.DataError({"password": "is required with user"})
    return opts


def _quota(found: VastQuota) -> VendorQuota:
    return VendorQuota(found.id, found.hard_limit, found.used_bytes)


class VastQuotas(VendorQuotas):
    vendor: ClassVar[str] = "VAST"
    lists_all: ClassVar[bool] = True

    def __init__(self, client: VastClient, vast_path: str, prefix: str) -> None:
        self.client = client
        self.base = vast_path.rstrip("/")
        self.prefix = prefix

    async def open(self) -> None:
        await self.client.rest.open()

    async def close(self) -> None:
        await self.client.rest.close()

    async def missing(self) -> list[str]:
        if not await self.client.clusters():  # also checks the credentials
            return [f"VAST at {self.client.endpoint} reports no cluster"]
        views = await self.client.view_paths()
        if not any(self.base == v or self.base.startswith(v.rstrip("/") + "/") for v in views):
            return [f"VAST at {self.client.endpoint} has no view exporting {self.base}"]
        return []

    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        prefix = self.base + "/"
        return {q.path[len(prefix) :]: _quota(q) for q in await self.client.quotas_under(self.base)}

    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        name = self.prefix + target.relpath.replace("/", "-")
        await self.client.create_quota(name, f"{self.base}/{target.relpath}", limit_bytes)

    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        await self.client.set_hard_limit(quota.handle, limit_bytes)

    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        await self.client.delete_quota(quota.handle)

    async def capacity(self) -> FSUsage | None:
        clusters = await self.client.clusters()
        if not clusters:
            return None
        rest, cluster = self.client.rest, clusters[0]
        return FSUsage(
            capacity_bytes=number(rest, cluster.get("usable_capacity_bytes"), "usable_capacity"),
            used_bytes=number(rest, cluster.get("physical_space_in_use"), "physical_space_in_use"),
        )


class VastVolume(VendorQuotaVolume, NfsVolume):
    backend_name = "vast"
    options_schema = t.Dict(VAST_OPTIONS) >> _one_credential

    def make_quota_api(self) -> VastQuotas:
        opts = self.options
        auth: Auth
        if opts["api-token"]:
            auth = TokenAuth(opts["api-token"], scheme="Api-Token")
        else:
            auth = VastLogin(opts["api-version"], opts["user"], opts["password"])
        rest = RestClient(
            "VAST",
            opts["endpoint"],
            auth,
            error_body=vast_error_body,
            verify_ssl=opts["verify-ssl"],
            ca_file=opts["ca-file"],
            request_timeout=opts["request-timeout"],
            retry_statuses=frozenset({500, 502, 504}),
            post_retry_statuses=frozenset(),
        )
        return VastQuotas(
            VastClient(rest, opts["api-version"]), opts["vast-path"], opts["quota-prefix"]
        )
