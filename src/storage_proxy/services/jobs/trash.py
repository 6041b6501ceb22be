"""Cleanup: purge trash entries once ``trash-grace`` has passed; drop expired uploads.

A deleted vfolder is renamed into its volume's trash (``trash_dir``: ``<volume>/.trash``, or per
scope on CephFS); it stays there, restorable, until its grace time is over.  The age of an entry
is its ctime, which the rename into the trash sets.  Upload sessions past their expiry are
terminated; staged upload files that no session refers to, and staged writes a crashed writer
left (no live writer holds their lock), are removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from ...core.errors import StorageProxyError
from ...volumes.posix import STAGING_REAP_AGE, TRASH_DIR, UPLOADS_DIR
from ..bgtasks import ProgressReporter
from .common import JobDeps, posix_volumes

log = logging.getLogger(__name__)

NAME = "trash-purge"
#: A staged upload file no session refers to is removed once it is this old (a session row is
#: written before its file, and removed after it, so such a file is a leftover).
STRAY_AGE = 300.0
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


def trash_dirs(mount: Path) -> list[Path]:
    """The volume-wide trash and every per-scope one."""
    found = [mount / TRASH_DIR]
    try:
        with os.scandir(mount) as it:
            found += [Path(e.path) / TRASH_DIR for e in it if not e.name.startswith(".")]
    except FileNotFoundError:
        pass
    return [p for p in found if p.is_dir()]


def purge_trash(mount: Path, older_than: float) -> tuple[list[str], list[str]]:
    """Remove trash entries whose ctime is before ``older_than``; (purged, kept) names."""
    purged, kept = [], []
    for trash in trash_dirs(mount):
        for entry in sorted(os.scandir(trash), key=lambda e: e.name):
            rel = os.path.relpath(entry.path, mount)
            if entry.stat(follow_symlinks=False).st_ctime >= older_than:
                kept.append(rel)
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            purged.append(rel)
    return purged, kept


def stray_uploads(mount: Path, older_than: float) -> list[str]:
    """Staged upload files last written before ``older_than`` (candidates; sessions decide)."""
    staged = mount / UPLOADS_DIR
    try:
        entries = list(os.scandir(staged))
    except FileNotFoundError:
        return []
    return [
        e.name
        for e in entries
        if _SESSION_ID.match(e.name) and e.stat(follow_symlinks=False).st_mtime < older_than
    ]


async def run(
    deps: JobDeps, reporter: ProgressReporter, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    grace = deps.settings["trash-grace"].total_seconds()
    volumes = posix_volumes(deps.volumes)
    await reporter.update(0, len(volumes) + 1, "purging the trash", force=True)
    result: dict[str, Any] = {"purged": {}, "kept": {}, "stray_uploads_removed": {}}
    for name, volume in volumes:
        purged, kept = await asyncio.to_thread(purge_trash, volume.mount_path, now - grace)
        result["purged"][name], result["kept"][name] = purged, len(kept)
        if purged:
            log.info("volume %s: purged %d trash entr(ies)", name, len(purged))
        removed = []
        stray = await asyncio.to_thread(stray_uploads, volume.mount_path, now - STRAY_AGE)
        for session_id in stray:
            if await deps.metadata.get_upload(session_id) is None:
                try:
                    await volume.upload_discard(session_id)
                except StorageProxyError:
                    continue  # a writer holds it after all
                removed.append(session_id)
        result["stray_uploads_removed"][name] = removed
        reaped = await asyncio.to_thread(volume.reap_staging, now - STAGING_REAP_AGE)
        result.setdefault("staged_writes_reaped", {})[name] = reaped
        await reporter.advance()
    result["expired_uploads"] = await deps.uploads.expire(now)
    await reporter.advance()
    return result
