"""Cleanup: purge trash entries once ``trash-grace`` has passed; drop expired uploads.

A deleted vfolder waits in its volume's trash, restorable by an operator, until its grace time
is over; every volume empties its own (``purge_trash``: directories on filesystems, a key prefix
on object stores).  Upload sessions past their expiry are terminated; staged uploads that no
session refers to, and staged writes a crashed writer left (no live writer holds their lock),
are removed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...core.errors import StorageProxyError
from ..bgtasks import ProgressReporter
from .common import JobDeps

log = logging.getLogger(__name__)

NAME = "trash-purge"
#: A staged upload no session refers to is removed once it is this old (a session row is
#: written before its staged file, and removed after it, so such a file is a leftover).
STRAY_AGE = 300.0
#: A staged write being created (not locked yet) for longer than this is a crash's.
STAGING_REAP_AGE = 60.0


async def run(
    deps: JobDeps, reporter: ProgressReporter, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    grace = deps.settings.trash_grace
    volumes = list(deps.volumes.items())
    await reporter.update(0, len(volumes) + 1, "purging the trash", force=True)
    result: dict[str, Any] = {
        "purged": {},
        "kept": {},
        "stray_uploads_removed": {},
        "staged_writes_reaped": {},
    }
    for name, volume in volumes:
        report = await volume.purge_trash(now - grace)
        result["purged"][name], result["kept"][name] = report.purged, report.kept
        if report.purged:
            log.info("volume %s: purged %d trash entr(ies)", name, len(report.purged))
        removed = []
        for session_id in await volume.staged_uploads(now - STRAY_AGE):
            if await deps.metadata.get_upload(session_id) is None:
                try:
                    await volume.upload_discard(session_id)
                except StorageProxyError:
                    continue  # a writer holds it after all
                removed.append(session_id)
        result["stray_uploads_removed"][name] = removed
        result["staged_writes_reaped"][name] = await volume.reap_staging(now - STAGING_REAP_AGE)
        await reporter.advance()
    result["expired_uploads"] = await deps.uploads.expire(now)
    await reporter.advance()
    return result
