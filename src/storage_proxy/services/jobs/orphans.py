"""Orphan detection: directories with no registry entry, and registry entries with no directory.

Only reported (logged and kept as the job's result), never deleted: either side may be the one
that is right, and an operator decides.  Dot-entries (``.trash``, ``.uploads``, ``.dataproxy``,
staging names) belong to the proxy and are ignored; a vfolder in the middle of a clone is not
registered yet and hides under a staging name until it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..bgtasks import ProgressReporter
from .common import JobDeps, posix_volumes, registered_vfolders

log = logging.getLogger(__name__)

NAME = "orphan-scan"
# Backend.AI layout: <scope-hex>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>
_LEVELS = (
    re.compile(r"^[0-9a-f]{32}$"),
    re.compile(r"^[0-9a-f]{2}$"),
    re.compile(r"^[0-9a-f]{2}$"),
)
_LEAF = re.compile(r"^[0-9a-f]{28}$")


def find_vfolder_dirs(root: Path) -> tuple[set[tuple[str, ...]], list[str]]:
    """Every vfolder-shaped directory below ``root``, and entries that fit no layout level."""
    found: set[tuple[str, ...]] = set()
    strays: list[str] = []

    def visit(path: Path, parts: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            here = (*parts, entry.name)
            depth = len(parts)
            pattern = _LEVELS[depth] if depth < len(_LEVELS) else _LEAF
            if not (entry.is_dir(follow_symlinks=False) and pattern.match(entry.name)):
                strays.append("/".join(here))
            elif depth < len(_LEVELS):
                visit(Path(entry.path), here)
            else:
                found.add(here)

    visit(root, ())
    return found, strays


async def run(deps: JobDeps, reporter: ProgressReporter) -> dict[str, Any]:
    volumes = posix_volumes(deps.volumes)
    await reporter.update(0, len(volumes), "looking for orphans", force=True)
    result: dict[str, Any] = {"volumes": {}}
    count = 0
    for name, volume in volumes:
        dirs, strays = await asyncio.to_thread(find_vfolder_dirs, volume.mount_path)
        registered = {tuple(v.relative_parts): v for v in await registered_vfolders(deps, name)}
        unregistered = sorted("/".join(p) for p in dirs - set(registered))
        missing = sorted(str(v) for p, v in registered.items() if p not in dirs)
        result["volumes"][name] = {
            "unregistered_dirs": unregistered,
            "missing_dirs": missing,
            "unexpected_entries": strays,
        }
        for what, items in (
            ("directory without a vfolder", unregistered),
            ("vfolder without a directory", missing),
            ("entry outside the vfolder layout", strays),
        ):
            for item in items:
                log.warning("orphan on volume %s: %s: %s", name, what, item)
        count += len(unregistered) + len(missing) + len(strays)
        await reporter.advance()
    result["orphan_count"] = count
    return result
