"""Scrub: re-hash every file that carries a stored sha256 and report the ones that differ.

A stored checksum is trusted only while the file's size and mtime are what they were when it was
computed (``filemeta``), so a mismatch here means the bytes changed underneath: corruption.
Nothing is repaired; the result and the log name each corrupted file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from ...errors import StorageProxyError
from ...paths import RelPath
from ..bgtasks import ProgressReporter
from .common import JobDeps, is_busy, posix_volumes, registered_vfolders, walk_files

log = logging.getLogger(__name__)

NAME = "scrub"
_CHUNK = 4 << 20


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[tuple[str, str, os.stat_result]]:
    return list(walk_files(root))


async def run(deps: JobDeps, reporter: ProgressReporter) -> dict[str, Any]:
    targets = [
        (name, volume, vfid)
        for name, volume in posix_volumes(deps.volumes)
        for vfid in await registered_vfolders(deps, name)
    ]
    await reporter.update(0, len(targets), "scrubbing", force=True)
    corrupted: list[dict[str, str]] = []
    checked = unchecked = nbytes = 0
    for name, volume, vfid in targets:
        if await is_busy(deps, name, vfid):
            await reporter.advance()
            continue
        files = await asyncio.to_thread(_files, volume.vfolder_path(vfid))
        for rel, path, st in files:
            try:
                meta = await volume.get_file_meta(vfid, RelPath.parse(rel))
            except StorageProxyError:
                continue  # gone or renamed since the walk
            if not meta.sha256:
                unchecked += 1
                continue
            actual = await asyncio.to_thread(sha256_of, path)
            checked += 1
            nbytes += st.st_size
            if actual != meta.sha256:
                log.error("scrub: %s %s/%s: sha256 mismatch", name, vfid, rel)
                corrupted.append(
                    {
                        "volume": name,
                        "vfid": str(vfid),
                        "path": rel,
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
