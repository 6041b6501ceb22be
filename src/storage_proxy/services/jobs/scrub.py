"""Scrub: re-hash every file that carries a stored sha256 and report the ones that differ.

A stored checksum is trusted only while the file's size and mtime are what they were when it was
computed (``filemeta``), so a mismatch here means the bytes changed underneath: corruption.
Nothing is repaired; the result and the log name each corrupted file.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...core.errors import IsADirectory, StorageProxyError
from ...core.paths import RelPath
from ...core.types import VFolderID
from ...volumes import fstree
from ...volumes.posix import STAGING_MARK, BasePosixVolume
from ..bgtasks import ProgressReporter
from .common import JobDeps, is_busy, posix_volumes, registered_vfolders

log = logging.getLogger(__name__)

NAME = "scrub"
_CHUNK = 4 << 20


def list_files(volume: BasePosixVolume, vfid: VFolderID) -> list[str]:
    """Relpaths of the vfolder's regular files, walked on descriptors (blocking)."""
    found: list[str] = []
    volume.walk_files(vfid, lambda rel, parent, name, st: found.append(rel))
    return found


async def sha256_of(volume: BasePosixVolume, vfid: VFolderID, rel: RelPath) -> tuple[str, int]:
    """The file's sha256 and size, read from the descriptor it is opened on (never a path)."""
    local = await volume.local_file(vfid, rel)
    assert local is not None
    with local:
        if local.is_dir:
            raise IsADirectory(str(rel))
        (digest,) = await asyncio.to_thread(fstree.hash_fd, local.fd, "sha256")
        return digest, local.stat.st_size


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
        try:
            files = await asyncio.to_thread(list_files, volume, vfid)
        except StorageProxyError:
            files = []  # deleted since the plan was made
        for raw in files:
            if STAGING_MARK in raw:
                continue  # being written right now
            rel = RelPath.parse(raw)
            try:
                meta = await volume.get_file_meta(vfid, rel)
                if not meta.sha256:
                    unchecked += 1
                    continue
                actual, size = await sha256_of(volume, vfid, rel)
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
