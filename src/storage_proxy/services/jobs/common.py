"""What the periodic jobs share: their dependencies and which volumes and vfolders to visit.

Every job visits every volume, whatever its storage, through the volume's maintenance hooks
(``volumes.upkeep``: on held descriptors on filesystems, never through a link a tenant swapped
in), so a job can neither read nor delete anything outside the vfolder it works on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.types import VFolderID
from ...metadata.store import MetadataStore
from ...volumes.registry import VolumeRegistry
from ..bgtasks import BackgroundTaskService
from ..quotas import QuotaService
from ..snapshots import SnapshotService
from ..uploads import UploadService
from ..usage import UsageService
from ..vfolders import VFolderService
from .settings import JobSettings


@dataclass
class JobDeps:
    volumes: VolumeRegistry
    metadata: MetadataStore
    uploads: UploadService
    bgtasks: BackgroundTaskService
    settings: JobSettings
    usage: UsageService
    vfolders: VFolderService | None = None
    quotas: QuotaService | None = None
    snapshots: SnapshotService | None = None
    #: (volume, its snapshot totals) after each run of the snapshot-policies job: the gauges
    on_snapshot_totals: Callable[[str, Any], None] | None = None


async def registered_vfolders(deps: JobDeps, volume: str) -> list[VFolderID]:
    out = []
    for record in await deps.metadata.list_vfolders(volume):
        try:
            out.append(VFolderID.parse(record.vfid))
        except Exception:  # a malformed registry row is the orphan job's business
            continue
    return out


async def is_busy(deps: JobDeps, volume: str, vfid: VFolderID) -> bool:
    return await deps.metadata.get_vfolder_status(volume, str(vfid)) is not None
