"""The volume side of vendor quotas: what every vendor backend does the same way.

A vendor backend is a POSIX volume over the vendor's mount (NFS, or the native client) whose
quota model is a :class:`~.vendorquota.VendorQuotaModel`.  Mixed in before the mount's class::

    class WekaVolume(VendorQuotaVolume, NfsVolume): ...

it adds, once for all of them: the start-up check that names what is missing (endpoint
unreachable, credentials refused, file system not found, quota feature off), closing the vendor
client on shutdown, capacity from the vendor, per-vfolder quota objects where the product nests
quotas, and the two places where quota domains show through the mount -- a rename may not leave
one (EXDEV), so writes are staged beside their target and deleted vfolders are trashed inside
their own scope.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

from ..core.errors import BackendUnavailable, PluginError
from ..core.types import Capability, FSUsage, VFolderID
from .posix import POSIX_KEEPING, TRASH_DIR, BasePosixVolume
from .vendorquota import VendorQuotaModel, VendorQuotas, model_kwargs

log = logging.getLogger(__name__)

VENDOR_CAPABILITIES = frozenset(
    {
        Capability.VFOLDER,
        Capability.QUOTA,
        Capability.NATIVE_QUOTA,
        Capability.FAST_USAGE,
        Capability.LOCAL_PATH,
        *POSIX_KEEPING,  # snapshots and versions by copies inside each scope
    }
)


class VendorQuotaVolume(BasePosixVolume):
    """Quotas through the vendor (see the module docstring); files through the mount."""

    capabilities = VENDOR_CAPABILITIES

    quota_model: Any  # VendorQuotaModel (the base types it for its proxy model)
    quota_api: VendorQuotas

    @abstractmethod
    def make_quota_api(self) -> VendorQuotas:
        """The vendor's quota objects for this volume (built from ``self.options``)."""

    def create_quota_model(self) -> VendorQuotaModel:
        self.quota_api = self.make_quota_api()
        return VendorQuotaModel(
            **model_kwargs(self),
            api=self.quota_api,
            usage_ttl=float(self.options.get("quota-usage-ttl", 30.0)),
        )

    async def init(self) -> None:
        """The mount's checks, then the vendor's: refuse the volume naming what is missing."""
        await super().init()
        vendor = self.quota_api.vendor
        try:
            await self.quota_api.open()
            missing = await self.quota_api.missing()
        except BackendUnavailable as e:
            await self.quota_api.close()
            raise PluginError(f"volume {self.name!r}: {e.detail}") from None
        except BaseException:
            await self.quota_api.close()
            raise
        if missing:
            await self.quota_api.close()
            raise PluginError(
                f"volume {self.name!r} cannot use {vendor} quotas: " + "; ".join(missing)
            )
        log.info("volume %s: %s quotas ready", self.name, vendor)

    async def shutdown(self) -> None:
        await self.quota_api.close()
        await super().shutdown()

    async def get_fs_usage(self) -> FSUsage:
        return await self.quota_api.capacity() or await super().get_fs_usage()

    # -- nested quota objects --------------------------------------------------------------------
    async def set_vfolder_quota(self, vfid: VFolderID, limit_bytes: int | None) -> None:
        """``PATCH /folder/quota``: natively where the product nests quotas (the metadata store
        keeps the limit for the proxy's own checks either way)."""
        if self.quota_api.nests:
            await self._run(self._existing_vfolder, vfid)
            await self.quota_model.set_vfolder_limit(vfid, limit_bytes)

    async def delete_vfolder(self, vfid: VFolderID) -> None:
        """A vfolder's own quota object goes first: its directory is then renamed to the trash."""
        if self.quota_api.nests and await self.vfolder_exists(vfid):
            await self.quota_model.drop_vfolder_quota(vfid)
        await super().delete_vfolder(vfid)

    # -- quota domains show through the mount ----------------------------------------------------
    @property
    def stage_beside_target(self) -> bool:
        """A rename may not leave a quota domain (EXDEV), and the storage counts every byte:
        stage writes beside their target."""
        return True

    def trash_dir(self, vfid: VFolderID) -> Path:
        """Inside the scope: a rename may not leave its quota domain."""
        return self.quota_scope_path(vfid.quota_scope_id) / TRASH_DIR
