"""The ``ddn`` backend: DDN EXAScaler (Lustre), a Lustre project quota per quota scope.

A quota scope is its directory tagged with a project id of its own (``lfs project -p ID -r -s``:
everything created below inherits it); its limit is the project's block hard limit
(``lfs setquota -p``) and its usage the project's ``kbytes`` (``lfs quota -p``), which Lustre
counts for every project whether it has a limit or not.  Project ids come from
``project-id-range`` and are recorded on the volume itself (``.lustre-projects`` and
``.lustre-projid``, in the ``/etc/projects`` formats, under ``flock``: mount Lustre with
``-o flock``), so every proxy serving the volume agrees.  A file belongs to one project, so
vfolder limits are the proxy's; a rename across projects is EXDEV, so writes are staged beside
their target.  Every ``lfs`` call goes through the command seam with a timeout.

Options: the mount options (``check-mount``, ``expected-fstypes`` default ``["lustre"]``, …)
plus ``lfs-binary`` ("lfs"), ``project-id-range`` ([100000, 199999]), ``command-timeout`` (30 s),
``quota-usage-ttl``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import trafaret as t

from storage_proxy.core.errors import PluginError
from storage_proxy.volumes.commands import CommandRunner
from storage_proxy.volumes.projects import ProjectRegistry
from storage_proxy.volumes.vendorquota import QuotaTarget, VendorQuota, VendorQuotas
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_nfs import NfsVolume, nfs_options

from .lfs import Lfs, LfsError

DDN_OPTIONS: dict[t.Key, t.Trafaret] = {
    **nfs_options(["lustre"]),
    t.Key("lfs-binary", default="lfs"): t.String(),
    t.Key("project-id-range", default=[100000, 199999]): t.List(
        t.ToInt(gte=1, lte=2**32 - 2), min_length=2, max_length=2
    ),
    t.Key("command-timeout", default=30.0): t.ToFloat(gt=0),
}
PROJECTS, PROJID, LOCK = ".lustre-projects", ".lustre-projid", ".lustre-projects.lock"


class LustreProjectQuotas(VendorQuotas):
    vendor: ClassVar[str] = "EXAScaler (Lustre)"

    def __init__(self, lfs: Lfs, registry: ProjectRegistry) -> None:
        self.lfs = lfs
        self.registry = registry

    async def missing(self) -> list[str]:
        mount = self.lfs.mount
        try:
            await self.lfs.project_of(mount)
        except LfsError as e:
            if "not found" in str(e):
                return [f"{e.detail}: install the Lustre client utilities, or set lfs-binary"]
            return [f"{mount} does not take Lustre project ids: {e.detail}"]
        try:
            await self.lfs.quota(self.registry.id_range[0])
        except LfsError as e:
            return [f"project quotas cannot be read on {mount} (are they enabled?): {e.detail}"]
        return []

    async def report(self, wanted: QuotaTarget) -> dict[str, VendorQuota]:
        prid = await self.registry.lookup(wanted.relpath)
        if prid is None:
            return {}
        found = await self.lfs.quota(prid)
        return {wanted.relpath: VendorQuota(str(prid), found.hard_limit_bytes, found.used_bytes)}

    async def create(self, target: QuotaTarget, limit_bytes: int | None) -> None:
        prid = await self.registry.register(target.relpath, target.path)
        await self.lfs.set_project(target.path, prid)
        await self.lfs.set_limit(prid, limit_bytes)  # also clears what a former owner set

    async def set_limit(
        self, target: QuotaTarget, quota: VendorQuota, limit_bytes: int | None
    ) -> None:
        await self.lfs.set_limit(int(quota.handle), limit_bytes)

    async def remove(self, target: QuotaTarget, quota: VendorQuota) -> None:
        """The project keeps counting; only its limit goes (the id goes with the scope)."""
        await self.lfs.set_limit(int(quota.handle), None)

    async def delete_scope(self, target: QuotaTarget) -> None:
        """Untag the tree and free its project id (a later scope may get the id)."""
        prid = await self.registry.lookup(target.relpath)
        if prid is None:
            return
        if await asyncio.to_thread(target.path.is_dir):
            await self.lfs.clear_project(target.path)
        await self.lfs.set_limit(prid, None)
        await self.registry.unregister(target.relpath)

    async def discard_scope(self, target: QuotaTarget) -> None:
        await self.delete_scope(target)
        await super().discard_scope(target)


class DdnVolume(VendorQuotaVolume, NfsVolume):
    backend_name = "ddn"
    options_schema = t.Dict(DDN_OPTIONS)

    def __init__(self, *args: Any, runner: CommandRunner | None = None, **kwargs: Any) -> None:
        self._runner = runner
        super().__init__(*args, **kwargs)

    def make_quota_api(self) -> LustreProjectQuotas:
        opts = self.options
        low, high = opts["project-id-range"]
        if low > high:
            raise PluginError(f"volume {self.name!r}: project-id-range [{low}, {high}] is empty")
        runner = self._runner or CommandRunner(timeout=opts["command-timeout"])
        lfs = Lfs(runner, self.mount_path, opts["lfs-binary"])
        root = Path(self.mount_path)
        registry = ProjectRegistry(root / PROJECTS, root / PROJID, root / LOCK, (low, high))
        return LustreProjectQuotas(lfs, registry)
