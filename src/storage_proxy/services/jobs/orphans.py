"""Orphan detection: vfolders stored with no registry entry, and registry entries with nothing
stored.

Only reported (logged and kept as the job's result), never deleted: either side may be the one
that is right, and an operator decides.  Each volume lists what it holds (``stored_vfolders``:
directories on filesystems, markers on object stores); what belongs to the proxy (trash,
staging) is not listed, and a vfolder in the middle of a clone hides under a staging name until
it is registered.
"""

from __future__ import annotations

import logging
from typing import Any

from ..bgtasks import ProgressReporter
from .common import JobDeps, registered_vfolders

log = logging.getLogger(__name__)

NAME = "orphan-scan"


async def run(deps: JobDeps, reporter: ProgressReporter) -> dict[str, Any]:
    volumes = list(deps.volumes.items())
    await reporter.update(0, len(volumes), "looking for orphans", force=True)
    result: dict[str, Any] = {"volumes": {}}
    count = 0
    for name, volume in volumes:
        stored = await volume.stored_vfolders()
        if stored is None:
            result["volumes"][name] = {"unsupported": True}
            await reporter.advance()
            continue
        registered = {tuple(v.relative_parts): v for v in await registered_vfolders(deps, name)}
        unregistered = sorted("/".join(p) for p in stored.vfolders - set(registered))
        missing = sorted(str(v) for p, v in registered.items() if p not in stored.vfolders)
        result["volumes"][name] = {
            "unregistered_dirs": unregistered,
            "missing_dirs": missing,
            "unexpected_entries": list(stored.strays),
        }
        for what, items in (
            ("vfolder stored without a registry entry", unregistered),
            ("vfolder registered but not stored", missing),
            ("entry outside the vfolder layout", stored.strays),
        ):
            for item in items:
                log.warning("orphan on volume %s: %s: %s", name, what, item)
        count += len(unregistered) + len(missing) + len(stored.strays)
        await reporter.advance()
    result["orphan_count"] = count
    return result
