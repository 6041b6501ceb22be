"""Retention: delete files older than a vfolder's retention period (by modification time).

The period comes from ``[jobs.retention]`` (volume name → days) unless the vfolder has its own in
the metadata store (``PUT /folder/retention``; 0 exempts it).  In dry-run mode nothing is deleted
and the result lists what would be.  Symlinks, directories and files being written are left
alone; vfolders busy with a clone or delete are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ...core.errors import StorageProxyError
from ...core.types import VFolderID
from ...volumes import fstree
from ...volumes.posix import STAGING_MARK, BasePosixVolume
from ..bgtasks import ProgressReporter
from .common import JobDeps, is_busy, posix_volumes, registered_vfolders

log = logging.getLogger(__name__)

NAME = "retention"
MAX_LISTED = 1000  # paths named in the result per run; the counts are always complete
DAY = 86400.0


def expire_files(
    volume: BasePosixVolume, vfid: VFolderID, older_than: float, dry_run: bool
) -> tuple[list[str], int, int]:
    """(relpaths, count, bytes) of files last modified before ``older_than``, deleted unless
    ``dry_run`` — each only if it is still the file the walk saw (blocking: run in a thread)."""
    listed: list[str] = []
    count = size = 0

    def visit(rel: str, parent: int, name: str, st: os.stat_result) -> None:
        nonlocal count, size
        if st.st_mtime >= older_than or name.startswith(STAGING_MARK):
            return
        if not dry_run and not fstree.unlink_if_same(parent, name, st):
            return
        count += 1
        size += st.st_size
        if len(listed) < MAX_LISTED:
            listed.append(rel)

    volume.walk_files(vfid, visit)
    return listed, count, size


async def run(
    deps: JobDeps, reporter: ProgressReporter, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    dry_run = bool(deps.settings["retention-dry-run"])
    per_volume: dict[str, float] = deps.settings["retention"]
    plan = []
    for name, volume in posix_volumes(deps.volumes):
        own = await deps.metadata.get_vfolder_retention(name)
        for vfid in await registered_vfolders(deps, name):
            days = own.get(str(vfid), per_volume.get(name, 0.0))
            if days > 0:
                plan.append((name, volume, vfid, days))
    await reporter.update(0, len(plan), "applying retention", force=True)
    report: list[dict[str, Any]] = []
    for name, volume, vfid, days in plan:
        if await is_busy(deps, name, vfid):
            await reporter.advance()
            continue
        try:
            files, count, size = await asyncio.to_thread(
                expire_files, volume, vfid, now - days * DAY, dry_run
            )
        except StorageProxyError:
            files, count, size = [], 0, 0  # deleted since the plan was made
        if count and not dry_run:
            volume.quota_model.invalidate(vfid)
            log.info("retention: %s %s: deleted %d file(s), %d bytes", name, vfid, count, size)
        if count:
            report.append(
                {
                    "volume": name,
                    "vfid": str(vfid),
                    "days": days,
                    "files": files,
                    "file_count": count,
                    "bytes": size,
                }
            )
        await reporter.advance()
    return {"dry_run": dry_run, "vfolders": report}
