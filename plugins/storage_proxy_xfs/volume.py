"""The ``xfs`` backend: a POSIX volume whose quota scopes are XFS projects.

At start-up it checks that the filesystem is XFS mounted with project quotas and that xfs_quota
can drive them.  If not, it refuses the volume naming what is missing -- unless the volume's
``fallback-to-proxy-quota`` option asks for proxy-enforced quotas, which it then logs as a warning
and advertises (no ``native-quota``, no ``fast-usage``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trafaret as t

from storage_proxy.core.errors import PluginError
from storage_proxy.core.types import Capability
from storage_proxy.volumes.posix import POSIX_KEEPING, BasePosixVolume

from .projects import ProjectRegistry
from .quota import XfsQuotaModel
from .runner import CommandRunner
from .startup import missing_for_project_quota, read_mount
from .xfsquota import XfsQuota

log = logging.getLogger(__name__)

LOCK_FILE = ".xfs-projects.lock"
_NATIVE_ONLY = frozenset({Capability.NATIVE_QUOTA, Capability.FAST_USAGE})


class XfsVolume(BasePosixVolume):
    backend_name = "xfs"
    block_device_metrics = True  # a local file system: the counters of its block device
    capabilities = frozenset(
        {
            Capability.VFOLDER,
            Capability.QUOTA,
            Capability.NATIVE_QUOTA,
            Capability.FAST_USAGE,
            Capability.LOCAL_PATH,
            *POSIX_KEEPING,  # reflinked snapshot copies and versions where reflink=1
        }
    )
    options_schema = t.Dict(
        {
            # Seconds a quota report (or, in fallback, a scanned usage) is trusted.
            t.Key("quota-usage-ttl", default=30.0): t.ToFloat(gte=0),
            # Project ids are allocated from this inclusive range.
            t.Key("project-id-range", default=[1000, 65535]): t.List(
                t.ToInt(gte=1, lte=2**32 - 2), min_length=2, max_length=2
            ),
            t.Key("projects-file", default="/etc/projects"): t.String(),
            t.Key("projid-file", default="/etc/projid"): t.String(),
            t.Key("mounts-file", default="/proc/self/mounts"): t.String(),
            t.Key("xfs-quota-binary", default="xfs_quota"): t.String(),
            # Without project quotas, serve the volume with proxy-enforced quotas (a warning).
            t.Key("fallback-to-proxy-quota", default=False): t.ToBool(),
        }
    )

    quota_model: Any  # XfsQuotaModel, or the proxy model in fallback

    def __init__(self, *args: Any, runner: CommandRunner | None = None, **kwargs: Any) -> None:
        self.runner = runner or CommandRunner()
        self.native_quota = True
        super().__init__(*args, **kwargs)

    def create_quota_model(self) -> Any:
        low, high = self.options["project-id-range"]
        if low > high:
            raise PluginError(f"volume {self.name!r}: project-id-range [{low}, {high}] is empty")
        projects, projid = Path(self.options["projects-file"]), Path(self.options["projid-file"])
        self.xfs = XfsQuota(
            self.runner, self.mount_path, projects, projid, self.options["xfs-quota-binary"]
        )
        self.projects = ProjectRegistry(projects, projid, self.mount_path / LOCK_FILE, (low, high))
        return XfsQuotaModel(
            self.name,
            self.quota_scope_path,
            self.vfolder_path,
            self.deps.books,
            self.deps.scanner.scan,
            usage_ttl=float(self.options["quota-usage-ttl"]),
            registry=self.projects,
            xfs=self.xfs,
        )

    async def init(self) -> None:
        await super().init()
        mount = await read_mount(self.mount_path, Path(self.options["mounts-file"]))
        if mount is not None:
            self.xfs.mount_point = Path(mount.mount_point)  # xfs_quota wants the mount point
        missing = await missing_for_project_quota(mount, self.mount_path, self.xfs)
        if not missing:
            return
        what = "; ".join(missing)
        if not self.options["fallback-to-proxy-quota"]:
            raise PluginError(
                f"volume {self.name!r} ({self.mount_path}) cannot use XFS project quotas: {what}. "
                f"Fix that, or set fallback-to-proxy-quota = true to enforce quotas in the proxy."
            )
        log.warning(
            "volume %s (%s): XFS project quotas unavailable (%s); falling back to "
            "proxy-enforced quotas",
            self.name,
            self.mount_path,
            what,
        )
        self.native_quota = False
        self.quota_model = self.adopt(super().create_quota_model())

    @property
    def stage_beside_target(self) -> bool:
        """A rename may not leave an XFS project (EXDEV): stage writes inside it."""
        return self.native_quota

    async def get_capabilities(self) -> frozenset[Capability]:
        if self.native_quota:
            return self.capabilities
        return self.capabilities - _NATIVE_ONLY
