"""ONTAP volume snapshots as vfolder snapshots: taken, listed and deleted through the REST API,
read and restored through the ``.snapshot`` directory of the NFS mount.

A quota scope is a qtree and a vfolder a directory inside it, so the only native snapshot there
is a snapshot of the whole ONTAP volume.  Each vfolder snapshot is one volume snapshot named
``sp_<vfolder hex>_<id>`` (its comment names the vfolder), and what the vfolder sees of it is
its own directory inside ``<mount>/.snapshot/<name>/``, opened beneath that directory like a
vfolder root (no ``..``, no symlink out, no ``.snapshot`` below): the snapshot holds every
vfolder of the volume, a vfolder's view holds only its own files.  A vfolder lists, reads and
restores only the snapshots ONTAP lists under its name and comment, so another vfolder's
snapshot cannot be named by id.

Restoring reads the snapshot's files over NFS and writes them through the vfolder's own
descriptors (the POSIX restore): it touches nothing outside the vfolder.  ONTAP's whole-volume
restore (``PATCH ... restore_to``) would roll back every vfolder of the volume and is never used.

ONTAP keeps at most 1023 snapshots per volume, shared by every vfolder on it (and by the
filer's own schedules): past that, taking one fails (503 from the filer's refusal) until older
ones are deleted -- keep per-vfolder policies short on a volume with many vfolders.

Snapshot blocks are not counted by ONTAP tree quotas (they live in the volume's snapshot
reserve), so ``snapshot-quota`` is not declared.  Deleting a vfolder deletes its snapshots:
they would otherwise keep the vfolder's blocks (and a view of nothing) until someone noticed.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage_proxy.core.errors import NotSupported, SnapshotExists, SnapshotNotFound
from storage_proxy.core.snapshots import (
    Progress,
    RestoreOptions,
    RestoreReport,
    SnapshotInfo,
    check_snapshot_id,
)
from storage_proxy.core.types import Capability, VFolderID
from storage_proxy.volumes.posix_snapshots import PosixSnapshots
from storage_proxy.volumes.snapshots import SnapshotTree

from .client import Json, OntapClient
from .errors import OntapError

log = logging.getLogger(__name__)

SNAPSHOT_DIR = ".snapshot"
#: What a volume whose ``.snapshot`` the mount does not show cannot do.
_NEEDS_SNAPDIR = frozenset({Capability.SNAPSHOT, Capability.NATIVE_SNAPSHOT})
NAME_PREFIX = "sp_"


def ontap_name(vfid: VFolderID, snapshot_id: str) -> str:
    return f"{NAME_PREFIX}{vfid.folder_id.hex}_{snapshot_id}"


def owner(vfid: VFolderID) -> str:
    """The comment an ONTAP snapshot of this vfolder carries."""
    return f"storage-proxy vfolder {vfid}"


def _created(record: Json) -> datetime:
    raw = record.get("create_time")
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class OntapSnapshots(PosixSnapshots):
    """The snapshot part of the NetApp volume (see the module docstring)."""

    client: OntapClient
    quota_model: Any  # NetAppQuotaModel: knows the ONTAP volume's uuid
    mount_path: Path
    #: The mount shows ``.snapshot`` (the volume's snapshot directory access is on); checked
    #: at start-up: without it snapshots could be taken but never read, so none are offered.
    snapdir_visible = False

    async def check_snapdir(self) -> None:
        self.snapdir_visible = await self.run_blocking(os.path.isdir, self.snapdir)
        if not self.snapdir_visible:
            log.warning(
                "volume %s: %s is not visible on the mount (ONTAP's snapshot directory access "
                "is off for the volume?): snapshots are not offered",
                getattr(self, "name", "?"),
                self.snapdir,
            )

    @property
    def snapdir(self) -> Path:
        return self.mount_path / SNAPSHOT_DIR

    async def get_capabilities(self) -> frozenset[Capability]:
        caps = await super().get_capabilities()
        return caps if self.snapdir_visible else caps - _NEEDS_SNAPDIR

    def _snapshots_supported(self) -> None:
        if not self.snapdir_visible:
            raise NotSupported("snapshots", self.backend_name)

    def snapshot_path(self, vfid: VFolderID, snapshot_id: str) -> Path:
        """The vfolder's own directory inside the volume snapshot."""
        inside = self.vfolder_path(vfid).relative_to(self.mount_path)
        return self.snapdir / ontap_name(vfid, snapshot_id) / inside

    def _side_areas(self, vfid: VFolderID) -> list[Path]:
        """Snapshots are the filer's: only versions go to the trash with the vfolder."""
        return [self.versions_area(vfid)]

    async def _own(self, vfid: VFolderID, name: str) -> list[Json]:
        """The vfolder's ONTAP snapshots whose names match ``name``."""
        found = await self.client.snapshots(self.quota_model.volume_uuid, name)
        prefix = ontap_name(vfid, "")
        return [
            r
            for r in found
            if str(r.get("name", "")).startswith(prefix) and r.get("comment") == owner(vfid)
        ]

    async def _one(self, vfid: VFolderID, snapshot_id: str) -> Json | None:
        found = await self._own(vfid, ontap_name(vfid, snapshot_id))
        return next((r for r in found if r["name"] == ontap_name(vfid, snapshot_id)), None)

    async def create_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        await self.run_blocking(self._existing_vfolder, vfid)
        if await self._one(vfid, snapshot_id) is not None:
            raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}")
        name = ontap_name(vfid, snapshot_id)
        try:
            await self.client.create_snapshot(self.quota_model.volume_uuid, name, owner(vfid))
        except OntapError:
            if await self._one(vfid, snapshot_id) is not None:  # taken at once by another call
                raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}") from None
            raise
        record = await self._one(vfid, snapshot_id)
        if record is None:
            raise SnapshotNotFound(f"ONTAP lost snapshot {name!r} of vfolder {vfid} at once")
        return SnapshotInfo(snapshot_id, _created(record))

    async def list_snapshots(self, vfid: VFolderID) -> list[SnapshotInfo]:
        await self.run_blocking(self._existing_vfolder, vfid)
        if not self.snapdir_visible:
            return []
        prefix = ontap_name(vfid, "")
        found = [
            SnapshotInfo(r["name"][len(prefix) :], _created(r))
            for r in await self._own(vfid, f"{prefix}*")
        ]
        return sorted(found, key=lambda s: (s.created, s.id))

    async def delete_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> None:
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        await self.run_blocking(self._existing_vfolder, vfid)
        record = await self._one(vfid, snapshot_id)
        if record is None:
            raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}")
        await self.client.delete_snapshot(self.quota_model.volume_uuid, record["uuid"])

    async def _require(self, vfid: VFolderID, snapshot_id: str) -> None:
        """ONTAP says the snapshot is this vfolder's (not only that a directory is there)."""
        self._snapshots_supported()
        check_snapshot_id(snapshot_id)
        if await self._one(vfid, snapshot_id) is None:
            raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}")

    async def snapshot_tree(self, vfid: VFolderID, snapshot_id: str) -> SnapshotTree:
        await self._require(vfid, snapshot_id)
        return await super().snapshot_tree(vfid, snapshot_id)

    async def restore_snapshot(
        self,
        vfid: VFolderID,
        snapshot_id: str,
        options: RestoreOptions,
        progress: Progress | None = None,
    ) -> RestoreReport:
        await self._require(vfid, snapshot_id)
        return await super().restore_snapshot(vfid, snapshot_id, options, progress)

    async def drop_snapshots(self, vfid: VFolderID) -> None:
        """Every ONTAP snapshot of the vfolder (it is being deleted)."""
        for record in await self._own(vfid, f"{ontap_name(vfid, '')}*"):
            await self.client.delete_snapshot(self.quota_model.volume_uuid, record["uuid"])
