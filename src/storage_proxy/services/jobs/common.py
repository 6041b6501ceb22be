"""What the periodic jobs share: their dependencies and a careful walk of a local tree."""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...metadata.store import MetadataStore
from ...types import VFolderID
from ...volumes.posix import BasePosixVolume
from ...volumes.registry import VolumeRegistry
from ...volumes.scan import STAGING_MARK
from ..bgtasks import BackgroundTaskService
from ..uploads import UploadService
from ..usage import UsageService


@dataclass
class JobDeps:
    volumes: VolumeRegistry
    metadata: MetadataStore
    uploads: UploadService
    bgtasks: BackgroundTaskService
    settings: dict[str, Any]  # the validated [jobs] section
    usage: UsageService


def posix_volumes(volumes: VolumeRegistry) -> list[tuple[str, BasePosixVolume]]:
    """Volumes that are local directory trees; the jobs that walk trees skip the others."""
    return [(n, v) for n, v in volumes.items() if isinstance(v, BasePosixVolume)]


async def registered_vfolders(deps: JobDeps, volume: str) -> list[VFolderID]:
    out = []
    for record in await deps.metadata.list_vfolders(volume):
        try:
            out.append(VFolderID.parse(record.vfid))
        except Exception:  # a malformed registry row is the orphan job's business
            continue
    return out


async def is_busy(deps: JobDeps, volume: str, vfid: VFolderID) -> bool:
    return await deps.metadata.get_vfolder_status(volume, str(vfid)) is not None


def walk_files(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(relpath, abspath, lstat)`` of regular files below ``root``; symlinks are never
    followed or reported, and files still being written (staging names) are left alone."""
    stack = [(str(root), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if STAGING_MARK in entry.name:
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                stack.append((entry.path, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                yield rel, entry.path, st
