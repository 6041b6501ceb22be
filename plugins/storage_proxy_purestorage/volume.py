"""The ``purestorage`` backend: Pure Storage FlashBlade, a file system per quota scope.

FlashBlade's REST 2.x has no directory quotas: its quota objects are file systems (a hard limit
is ``provisioned`` with ``hard_limit_enabled``; usage is ``space.virtual``) and user/group quotas
by UID/GID.  So each quota scope is a file system of its own, named ``<fs-prefix><scope-hex>``,
and the volume path is where those file systems appear, each at ``<path>/<scope-hex>`` (an
automounter map such as ``* -fstype=nfs,vers=3 <data-vip>:/<fs-prefix>&``, or mounts made by the
operator).  The volume path itself must be writable for the proxy's own ``.uploads``.  A rename
between file systems is EXDEV, so writes are staged beside their target; vfolder limits are the
proxy's (file systems do not nest).  Every scope's usage comes from one paged listing.

Options: the NFS ones (``check-mount``: the volume path's own mount; off when it is a local
directory holding the automounts) plus ``endpoint``, ``api-token``, ``api-version`` (empty: the
newest 2.x the array offers), ``fs-prefix`` ("sp-"), ``nfs-rules`` (the export rule of new file
systems), ``verify-ssl`` (true), ``ca-file``, ``request-timeout``, ``quota-usage-ttl``.
"""

from __future__ import annotations

import asyncio
import os
from typing import ClassVar

import trafaret as t

from storage_proxy.core.errors import QuotaScopeExists, QuotaScopeNotEmpty
from storage_proxy.core.types import FSUsage
from storage_proxy.volumes.posix import TRASH_DIR
from storage_proxy.volumes.rest import RestClient, RestRejected
from storage_proxy.volumes.vendorquota import QuotaTarget, VendorQuota, VendorQuotas
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_nfs import NFS_OPTIONS, NfsVolume

from .client import FileSystem, FlashBladeClient, PurityLogin

PURE_OPTIONS: dict[t.Key, t.Trafaret] = {
    **NFS_OPTIONS,
    t.Key("endpoint"): t.URL,
    t.Key("api-token"): t.String(),
    t.Key("api-version", default=""): t.Regexp(r"^(2\.\d+)?$"),
    t.Key("fs-prefix", default="sp-"): t.Regexp(r"^[A-Za-z][A-Za-z0-9-]{0,29}$"),
    t.Key("nfs-rules", default="*(rw,no_root_squash)"): t.String(),
    t.Key("verify-ssl", default=True): t.ToBool(),
    t.Key("ca-file", default=None): t.Null | t.String(),
    t.Key("request-timeout", default=30.0): t.ToFloat(gt=0),
}


def _quota(fs: FileSystem) -> VendorQuota:
    return VendorQuota(fs.name, fs.limit_bytes, fs.used_bytes)


def _holds_vfolders(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.name != TRASH_DIR for e in it)
    except FileNotFoundError:
        return False


class FlashBladeQuotas(VendorQuotas):
    vendor: ClassVar[str] = "FlashBlade"
    lists_all: ClassVar[bool] = True

    def __init__(self, client: FlashBladeClient, prefix: str, nfs_rules: str) -> None:
        self.client = client
        self.prefix = prefix
        self.nfs_rules = nfs_rules

    def fs_name(self, target: QuotaTarget) -> str:
        return f"{self.prefix}{target.relpath}"

    async def open(self) -> None:
        await self.client.rest.open()

    async def close(self) -> None:
        await self.client.rest.close()

    async def missing(self) -> list[str]:
        if await self.client.choose_version() is None:
            wanted = self.client.api_version or "2.x"
            offered = ", ".join(await self.client.versions())
            return [
                f"FlashBlade at {self.client.endpoint} does not offer REST {wanted} ({offered})"
            ]
        await self.client.file_systems(f"{self.prefix}*")  # logs in: credentials checked
        return []

    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        """Every scope's file system, from one paged listing."""
        found = await self.client.file_systems(f"{self.prefix}*")
        return {fs.name[len(self.prefix) :]: _quota(fs) for fs in found}

    # -- the scope is the file system ------------------------------------------------------------
    async def scope_exists(self, target: QuotaTarget) -> bool:
        return await self.client.file_system(self.fs_name(target)) is not None

    async def create_scope(self, target: QuotaTarget) -> None:
        exists = QuotaScopeExists(f"quota scope {target.bucket} already exists")
        if await self.scope_exists(target):  # a destroyed one still holds its name
            raise exists
        try:
            await self.client.create_file_system(self.fs_name(target), self.nfs_rules)
        except RestRejected:
            if await self.scope_exists(target):  # created meanwhile: never undo another's
                raise exists from None
            raise

    async def discard_scope(self, target: QuotaTarget) -> None:
        await self.client.eradicate(self.fs_name(target))

    async def delete_scope(self, target: QuotaTarget) -> None:
        """Eradicate the file system, only once it holds no vfolder (its data goes with it)."""
        if await asyncio.to_thread(_holds_vfolders, str(target.path)):
            raise QuotaScopeNotEmpty(f"quota scope {target.bucket} still holds vfolders")
        await self.client.eradicate(self.fs_name(target))

    # -- its limit --------------------------------------------------------------------------------
    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        if limit_bytes:
            await self.client.set_limit(self.fs_name(target), limit_bytes)

    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        await self.client.set_limit(quota.handle, limit_bytes)

    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        await self.client.set_limit(quota.handle, None)

    async def capacity(self) -> FSUsage:
        capacity, used = await self.client.array_space()
        return FSUsage(capacity_bytes=capacity, used_bytes=used)


class PureStorageVolume(VendorQuotaVolume, NfsVolume):
    backend_name = "purestorage"
    options_schema = t.Dict(PURE_OPTIONS)

    def make_quota_api(self) -> FlashBladeQuotas:
        opts = self.options
        rest = RestClient(
            "FlashBlade",
            opts["endpoint"],
            PurityLogin(opts["api-token"]),
            verify_ssl=opts["verify-ssl"],
            ca_file=opts["ca-file"],
            request_timeout=opts["request-timeout"],
        )
        client = FlashBladeClient(rest, opts["api-version"])
        return FlashBladeQuotas(client, opts["fs-prefix"], opts["nfs-rules"])
