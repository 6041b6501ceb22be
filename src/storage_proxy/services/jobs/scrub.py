"""Scrub: re-hash every file that carries a stored sha256 and report the ones that differ.

A stored checksum is trusted only while the file is unchanged since it was computed (its size
and mtime on a filesystem, its ETag on an object store), so a mismatch here means the bytes
changed underneath: corruption.  Nothing is repaired; the result and the log name each corrupted
file.  Every volume is scrubbed, through its own walk and reads (``walk_files``,
``file_digest``).
"""

from __future__ import annotations

import logging
from typing import Any

from ...core.errors import StorageProxyError
from ...core.paths import RelPath
from ..bgtasks import ProgressReporter
from .common import JobDeps, is_busy, registered_vfolders

log = logging.getLogger(__name__)

NAME = "scrub"


async def run(deps: JobDeps, reporter: ProgressReporter) -> dict[str, Any]:
    targets = [
        (name, volume, vfid)
        for name, volume in deps.volumes.items()
        for vfid in await registered_vfolders(deps, name)
    ]
    await reporter.update(0, len(targets), "scrubbing", force=True)
    corrupted: list[dict[str, str]] = []
    checked = unchecked = nbytes = 0
    for name, volume, vfid in targets:
        if await is_busy(deps, name, vfid):
            await reporter.advance()
            continue
        try:
            files = [f.path async for f in volume.walk_files(vfid)]
        except StorageProxyError:
            files = []  # deleted since the plan was made
        for raw in files:
            rel = RelPath.parse(raw)
            try:
                meta = await volume.get_file_meta(vfid, rel)
                if not meta.sha256:
                    unchecked += 1
                    continue
                actual, size = await volume.file_digest(vfid, rel)
            except StorageProxyError:
                continue  # gone or renamed since the walk
            checked += 1
            nbytes += size
            if actual != meta.sha256:
                log.error("scrub: %s %s/%s: sha256 mismatch", name, vfid, raw)
                corrupted.append(
                    {
                        "volume": name,
                        "vfid": str(vfid),
                        "path": raw,
                        "expected_sha256": meta.sha256,
                        "actual_sha256": actual,
                    }
                )
        await reporter.advance()
    return {
        "checked_files": checked,
        "checked_bytes": nbytes,
        "files_without_checksum": unchecked,
        "corrupted": corrupted,
    }
