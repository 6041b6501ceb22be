"""The ``cephfs`` backend: a CephFS mount (kernel client or ceph-fuse) with native quotas.

Everything POSIX is inherited; what differs is the quota model (limits as ``ceph.quota.*``
xattrs, usage from ``ceph.dir.rbytes``/``rfiles`` in O(1)) and the two places where Ceph's quota
realms show through: a rename across realms fails with EXDEV, so vfolders are trashed inside
their own scope (uploads staged outside the scope are copied in by the base when published).

Snapshots are CephFS's own (``.snap`` directories, see :mod:`.snapshots`): taken, listed and
deleted natively; read and restored through the base's descriptor-based tree.  Versions of
files are the base's (kept beside the vfolder, inside its scope).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import ClassVar

import trafaret as t

from storage_proxy.core.errors import PluginError, SnapshotExists, SnapshotNotFound
from storage_proxy.core.snapshots import Progress, SnapshotInfo, check_snapshot_id
from storage_proxy.core.types import Capability, VFolderID, VFolderUsage
from storage_proxy.volumes.beneath import errors_as, opened
from storage_proxy.volumes.posix import TRASH_DIR, BasePosixVolume

from . import snapshots, xattrs
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
            Capability.SNAPSHOT,
            Capability.NATIVE_SNAPSHOT,  # instant, copy-on-write; not counted by CephFS quotas
            Capability.FILE_VERSIONS,
        }
    )
    options_schema = t.Dict({})
    #: ``.snap`` is in every directory, unlisted: no user path may pass through it.
    hidden_names: ClassVar[frozenset[str]] = frozenset({snapshots.SNAP_DIR})

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

    def remove_trashed_tree(self, path: Path) -> None:
        """A directory with snapshots cannot be removed: they go first."""
        snapshots.remove_tree(path)

    # -- snapshots: .snap directories -----------------------------------------------------------
    def snapshot_path(self, vfid: VFolderID, snapshot_id: str) -> Path:
        return self.vfolder_path(vfid) / snapshots.SNAP_DIR / snapshot_id

    def _side_areas(self, vfid: VFolderID) -> list[Path]:
        """Snapshots live in the vfolder itself (and go to the trash with it)."""
        return [self.versions_area(vfid)]

    async def create_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        check_snapshot_id(snapshot_id)

        def take() -> SnapshotInfo:
            with self._root(vfid) as root, opened(snapshots.open_snapdir(root)) as snap:
                try:
                    os.mkdir(snapshot_id, dir_fd=snap)
                except FileExistsError:
                    raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}") from None
                return snapshots.describe(snap, snapshot_id)

        with errors_as(snapshot_id):
            return await self._run(take)

    async def list_snapshots(self, vfid: VFolderID) -> list[SnapshotInfo]:
        def listed() -> list[SnapshotInfo]:
            with self._root(vfid) as root, opened(snapshots.open_snapdir(root)) as snap:
                found = []
                for name in snapshots.own_snapshots(snap):
                    try:
                        found.append(snapshots.describe(snap, name))
                    except FileNotFoundError:
                        continue  # deleted meanwhile
                return sorted(found, key=lambda s: (s.created, s.id))

        with errors_as(vfid):
            return await self._run(listed)

    async def delete_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> None:
        check_snapshot_id(snapshot_id)

        def delete() -> None:
            with self._root(vfid) as root, opened(snapshots.open_snapdir(root)) as snap:
                try:
                    os.rmdir(snapshot_id, dir_fd=snap)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENOTDIR):
                        raise SnapshotNotFound(
                            f"vfolder {vfid} has no snapshot {snapshot_id!r}"
                        ) from None
                    raise

        with errors_as(snapshot_id):
            await self._run(delete)


__all__ = ["CephFSVolume", "CephQuotaModel"]
