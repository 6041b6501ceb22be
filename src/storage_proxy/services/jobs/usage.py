"""Usage scan: refresh every registered vfolder's usage and keep the latest figures.

Backends with FAST_USAGE answer from quota reports or rstats, so they are asked many at a time;
the others walk their trees, so only a few scans run at once.  The figures are the job's result
(persisted as its bgtask), which :func:`latest_usage` reads back for gauges and reports.  Each
scope's usage is then compared with its limit (the quota alerts and their gauge).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...core.errors import StorageProxyError
from ...core.types import Capability
from ..bgtasks import BgTaskStatus, ProgressReporter
from .common import JobDeps, registered_vfolders

log = logging.getLogger(__name__)

NAME = "usage-scan"
FAST_CONCURRENCY = 16
SCAN_CONCURRENCY = 2


async def run(deps: JobDeps, reporter: ProgressReporter) -> dict[str, Any]:
    figures: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    targets = []
    for name, volume in deps.volumes.items():
        fast = Capability.FAST_USAGE in await volume.get_capabilities()
        for vfid in await registered_vfolders(deps, name):
            targets.append((name, volume, vfid, fast))
    await reporter.update(0, len(targets), "scanning usage", force=True)
    fast_gate = asyncio.Semaphore(FAST_CONCURRENCY)
    scan_gate = asyncio.Semaphore(SCAN_CONCURRENCY)

    async def one(name: str, volume: Any, vfid: Any, fast: bool) -> None:
        async with fast_gate if fast else scan_gate:
            try:
                usage = await volume.get_usage(vfid)
            except StorageProxyError as e:
                errors.append({"volume": name, "vfid": str(vfid), "error": e.code})
            else:
                await deps.usage.put(name, vfid, usage)  # every node serves the fresh figure
                figures.append(
                    {
                        "volume": name,
                        "vfid": str(vfid),
                        "file_count": usage.file_count,
                        "used_bytes": usage.used_bytes,
                    }
                )
        await reporter.advance()

    await asyncio.gather(*(one(*t) for t in targets))
    if deps.quotas is not None:  # each scope's usage against its limit, for the alerts
        await deps.quotas.observe_scopes({(t[0], t[2].quota_scope_id) for t in targets})
    figures.sort(key=lambda f: (f["volume"], f["vfid"]))
    total = sum(f["used_bytes"] for f in figures)
    log.info("usage scan: %d vfolder(s), %d bytes, %d error(s)", len(figures), total, len(errors))
    return {"vfolders": figures, "errors": errors, "total_used_bytes": total}


async def latest_usage(deps: JobDeps) -> dict[tuple[str, str], dict[str, Any]]:
    """(volume, vfid) → the latest figures from the last completed scan (any worker's)."""
    done = await deps.metadata.list_bgtasks(
        kind=f"job:{NAME}", statuses=(BgTaskStatus.DONE,), limit=1
    )
    if not done or not isinstance(done[0].result, dict):
        return {}
    return {(f["volume"], f["vfid"]): f for f in done[0].result.get("vfolders", [])}
