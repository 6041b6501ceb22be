"""The ``cephfs`` backend: a CephFS mount (kernel client or ceph-fuse) with native quotas.

Everything POSIX is inherited; what differs is the quota model (limits as ``ceph.quota.*``
xattrs, usage from ``ceph.dir.rbytes``/``rfiles`` in O(1)) and the two places where Ceph's quota
realms show through: a rename across realms fails with EXDEV, so vfolders are trashed inside
their own scope (uploads staged outside the scope are copied in by the base when published).
"""

from __future__ import annotations

from pathlib import Path

import trafaret as t

from storage_proxy.core.errors import PluginError
from storage_proxy.core.types import Capability, VFolderID, VFolderUsage
from storage_proxy.volumes.posix import TRASH_DIR, BasePosixVolume

from . import xattrs
from .quota import CephQuotaModel, rstat_usage


class CephFSVolume(BasePosixVolume):
    backend_name = "cephfs"
    capabilities = frozenset(
        {
            Capability.VFOLDER,
            Capability.QUOTA,
            Capability.NATIVE_QUOTA,
            Capability.FAST_USAGE,
            Capability.LOCAL_PATH,
            Capability.XATTR,
        }
    )
    options_schema = t.Dict({})

    # The base types these for its proxy-enforced model; see the module docstring of .quota.
    quota_model: CephQuotaModel  # type: ignore[assignment]

    def create_quota_model(self) -> CephQuotaModel:
        return CephQuotaModel(self.name, self.quota_scope_path, self.vfolder_path, self.deps.books)

    async def init(self) -> None:
        await super().init()
        if not await self._run(xattrs.is_cephfs, self.mount_path):
            raise PluginError(
                f"volume {self.name!r}: {self.mount_path} is not on CephFS "
                f"(it has no {xattrs.RBYTES} xattr); mount CephFS there or use another backend"
            )

    async def get_usage(self, vfid: VFolderID) -> VFolderUsage:
        """File count (``rfiles``: directories excluded) and bytes from rstats, without a walk.

        Ceph propagates recursive stats lazily: a write shows up after a second or two.
        """
        path = await self._run(self._existing_vfolder, vfid)
        return await rstat_usage(path)

    async def set_vfolder_quota(self, vfid: VFolderID, limit_bytes: int | None) -> None:
        """Apply ``PATCH /folder/quota`` natively: the limit becomes the vfolder's xattr."""
        await self._run(self._existing_vfolder, vfid)
        await self.quota_model.set_vfolder_limit(vfid, limit_bytes)

    @property
    def stage_beside_target(self) -> bool:
        """A rename may not leave a quota realm (EXDEV), and rstats count every file: stage
        writes beside their target."""
        return True

    def trash_dir(self, vfid: VFolderID) -> Path:
        """Inside the scope: a rename may not leave a quota realm (EXDEV)."""
        return self.quota_scope_path(vfid.quota_scope_id) / TRASH_DIR


__all__ = ["CephFSVolume", "CephQuotaModel"]
