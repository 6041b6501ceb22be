"""Which mount a path is on, from a mounts table (``/proc/self/mounts`` format).

Backends check this at start-up: an NFS volume whose export is not mounted must fail loudly
instead of writing into the empty mount point on the local disk; an XFS volume needs to know
whether its filesystem was mounted with project quotas.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MOUNTS_FILE = Path("/proc/self/mounts")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountEntry:
    source: str  # e.g. "filer:/export/vol1"
    mount_point: str
    fstype: str
    options: frozenset[str]


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as ``\\040`` etc."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        source, mount_point, fstype, options = fields[:4]
        entries.append(
            MountEntry(
                _unescape(source), _unescape(mount_point), fstype, frozenset(options.split(","))
            )
        )
    return entries


def _within(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def find_mount(path: Path, entries: list[MountEntry]) -> MountEntry | None:
    """The entry whose mount point is the longest prefix of ``path`` (symlinks resolved).

    When a mount point appears more than once (over-mounted), the last entry is the visible one.
    """
    real = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in entries:
        if _within(real, entry.mount_point) and (
            best is None or len(entry.mount_point) >= len(best.mount_point)
        ):
            best = entry
    return best


def read_mount(path: Path, mounts_file: Path = DEFAULT_MOUNTS_FILE) -> MountEntry | None:
    """Blocking: reads the mounts file."""
    return find_mount(path, parse_mounts(mounts_file.read_text()))
