"""The start-up check: is this volume on XFS with project quotas that xfs_quota can drive?

It returns what is missing, in words an operator can act on; the volume decides whether that
refuses the volume or falls back to proxy-enforced quotas.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage_proxy.volumes import mounts
from storage_proxy.volumes.mounts import MountEntry

from .xfsquota import XfsQuota, XfsQuotaError

PROJECT_QUOTA_OPTIONS = frozenset({"prjquota", "pquota"})


async def read_mount(path: Path, mounts_file: Path) -> MountEntry | None:
    return await asyncio.to_thread(mounts.read_mount, path, mounts_file)


async def missing_for_project_quota(
    mount: MountEntry | None, path: Path, xfs: XfsQuota
) -> list[str]:
    """Everything that stops native project quotas on ``path``; empty when all is in place."""
    if mount is None:
        return [f"no mount holding {path} was found"]
    if mount.fstype != "xfs":
        return [f"{path} is on {mount.fstype} ({mount.mount_point}), not on XFS"]
    missing = []
    if not mount.options & PROJECT_QUOTA_OPTIONS:
        missing.append(
            f"the XFS filesystem {mount.source} at {mount.mount_point} is mounted without project "
            f"quotas: add 'prjquota' to its mount options (now: {','.join(sorted(mount.options))})"
        )
    try:
        state = await xfs.state()
    except XfsQuotaError as e:
        missing.append(str(e.detail))
        return missing
    if state is None or not state.accounting:
        missing.append(f"xfs_quota reports project quota accounting off on {mount.mount_point}")
    elif not state.enforcement:
        missing.append(f"xfs_quota reports project quota enforcement off on {mount.mount_point}")
    return missing
