"""Clone and delete as background tasks: the vfolders are marked busy, progress is reported.

Delete and clone are single volume calls; the clone's progress is estimated by measuring the
staging copy beside the destination (POSIX volumes) against the source's usage, scanned first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from ...core.errors import VFolderExists, VFolderNotFound
from ...core.types import VFolderID
from ...volumes.abc import AbstractVolume
from ...volumes.posix import STAGING_MARK, BasePosixVolume
from ..bgtasks import BackgroundTaskService, ProgressReporter

PROGRESS_POLL = 0.5


async def start_delete(
    bgtasks: BackgroundTaskService, volume: AbstractVolume, vfid: VFolderID
) -> str:
    """404 now if it does not exist; the rest happens in the task (vfolder ``deleting``)."""
    if not await volume.vfolder_exists(vfid):
        raise VFolderNotFound(f"no vfolder {vfid} on volume {volume.name!r}")

    async def delete(reporter: ProgressReporter) -> dict[str, Any]:
        await reporter.update(0, 1, "moving the vfolder to the trash", force=True)
        await volume.delete_vfolder(vfid)
        await reporter.update(1, 1, "deleted", force=True)
        return {"volume": volume.name, "vfid": str(vfid)}

    return await bgtasks.spawn(
        "vfolder-delete",
        delete,
        params={"volume": volume.name, "vfid": str(vfid)},
        busy=[(volume.name, str(vfid), "deleting")],
    )


async def start_clone(
    bgtasks: BackgroundTaskService, volume: AbstractVolume, src: VFolderID, dst: VFolderID
) -> str:
    """404/409 now for a missing source or an existing target; both are ``cloning`` meanwhile."""
    if not await volume.vfolder_exists(src):
        raise VFolderNotFound(f"no vfolder {src} on volume {volume.name!r}")
    if await volume.vfolder_exists(dst):
        raise VFolderExists(f"vfolder {dst} already exists")

    async def clone(reporter: ProgressReporter) -> dict[str, Any]:
        await reporter.update(0, None, "measuring the source", force=True)
        usage = await volume.get_usage(src)
        await reporter.update(0, usage.used_bytes, "copying", force=True)
        watcher = None
        if isinstance(volume, BasePosixVolume):
            staging_parent = volume.clone_staging_parent(dst)
            watcher = asyncio.create_task(_watch_copy(staging_parent, reporter))
        try:
            await volume.clone_vfolder(src, dst)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        await reporter.update(usage.used_bytes, message="cloned", force=True)
        return {"volume": volume.name, "src_vfid": str(src), "dst_vfid": str(dst)}

    return await bgtasks.spawn(
        "vfolder-clone",
        clone,
        params={"volume": volume.name, "src_vfid": str(src), "dst_vfid": str(dst)},
        busy=[(volume.name, str(src), "cloning"), (volume.name, str(dst), "cloning")],
    )


async def _watch_copy(parent: Path, reporter: ProgressReporter) -> None:
    while True:
        await asyncio.sleep(PROGRESS_POLL)
        copied: float = await asyncio.to_thread(_staged_bytes, parent)
        if reporter.total is not None:
            copied = min(copied, reporter.total)
        await reporter.update(copied)


def _staged_bytes(parent: Path) -> int:
    total = 0
    try:
        stagings = [e.path for e in os.scandir(parent) if e.name.startswith(STAGING_MARK)]
    except FileNotFoundError:
        return 0
    for root in stagings:
        for dirpath, _, files in os.walk(root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
