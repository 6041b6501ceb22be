"""Everything the doors may call, in one place: the services, built once by the composition
root (``context``).  A door reaches storage and the books only through these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ..core.dialect import DEFAULT_DIALECT, Dialect
from .access import AccessService
from .audit import AuditLog
from .batch import BatchService
from .bgtasks import BackgroundTaskService
from .browse import BrowseService
from .dataproxy import DataProxyService
from .files import FileService
from .health import HealthService
from .jobs import JobRunner
from .quotas import QuotaService
from .snapshot_policies import SnapshotPolicyService
from .snapshots import SnapshotService
from .stats import StatsService
from .tokens import TokenService
from .transfers import TransferService
from .uploads import UploadService
from .versions import VersionService
from .vfolders import VFolderService

if TYPE_CHECKING:
    from ..api.metrics import DaemonMetrics


@dataclass(frozen=True, slots=True)
class DoorSettings:
    """What the doors themselves need to know (read once from the configuration)."""

    manager_secret: str
    transfer_idle_timeout: timedelta = timedelta(seconds=60)
    max_upload_size: int = 1 << 40
    #: Threads per worker that splice large object-store reads to clients (0: none).
    relay_threads: int = 0
    #: Small-file downloads answered by the client listener's fast lane.
    fast_lane: bool = False
    #: Which Backend.AI release the manager API answers like (``[api.manager] compat``).
    dialect: Dialect = DEFAULT_DIALECT


@dataclass
class Services:
    settings: DoorSettings
    vfolders: VFolderService
    access: AccessService
    quotas: QuotaService
    files: FileService
    snapshots: SnapshotService
    snapshot_policies: SnapshotPolicyService
    versions: VersionService
    uploads: UploadService
    transfers: TransferService
    tokens: TokenService
    dataproxy: DataProxyService
    browse: BrowseService
    stats: StatsService
    bgtasks: BackgroundTaskService
    jobs: JobRunner
    audit: AuditLog
    health: HealthService
    metrics: DaemonMetrics
    batch: BatchService
