"""Retention: delete files older than a vfolder's retention period (by modification time).

The period comes from ``[jobs.retention]`` (volume name → days) unless the vfolder has its own in
the metadata store (``PUT /folder/retention``; 0 exempts it).  In dry-run mode nothing is deleted
and the result lists what would be.  Each volume removes a file only if it is still the one its
walk saw (``expire_files``); files being written are left alone; vfolders busy with a clone or
delete are skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...core.errors import StorageProxyError
from ...volumes.upkeep import Expired
from ..bgtasks import ProgressReporter
from .common import JobDeps, is_busy, registered_vfolders

log = logging.getLogger(__name__)

NAME = "retention"
DAY = 86400.0


async def run(
    deps: JobDeps, reporter: ProgressReporter, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    dry_run = deps.settings.retention_dry_run
    per_volume = deps.settings.retention
    plan = []
    for name, volume in deps.volumes.items():
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
            expired = await volume.expire_files(vfid, now - days * DAY, dry_run)
        except StorageProxyError:
            expired = Expired()  # deleted since the plan was made
        if expired.count and not dry_run:
            await deps.usage.changed(name, vfid)
            log.info(
                "retention: %s %s: deleted %d file(s), %d bytes",
                name, vfid, expired.count, expired.bytes,
            )  # fmt: skip
        if expired.count:
            report.append(
                {
                    "volume": name,
                    "vfid": str(vfid),
                    "days": days,
                    "files": expired.paths,
                    "file_count": expired.count,
                    "bytes": expired.bytes,
                }
            )
        await reporter.advance()
    return {"dry_run": dry_run, "vfolders": report}
