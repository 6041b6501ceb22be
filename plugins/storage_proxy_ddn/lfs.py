"""``lfs`` as an async API: the Lustre client commands the ddn backend runs, and their parsers.

Followed: the Lustre manual pages lfs-project(1), lfs-setquota(1), lfs-quota(1) and the output
formats of ``lustre/utils/lfs.c``:

* ``lfs project -p ID -r -s DIR`` gives a tree project id ID and the inherit flag (new files
  and directories below take the id); ``lfs project -d DIR`` prints ``<id> <P|-> <path>``;
  ``lfs project -C -r DIR`` clears both.
* ``lfs setquota -p ID -b SOFT -B HARD <mount>``: block limits in KiB, 0 is "no limit".
* ``lfs quota -p ID <mount>`` prints ``Disk quotas for prj ID (pid ID):``, a header
  ``Filesystem kbytes quota limit grace files quota limit grace`` and the values (the
  filesystem name on a line of its own when it is longer than 15 characters); a used value over
  its limit has ``*`` appended, an inaccurate one is shown in ``[...]``.  "prj quotas are not
  enabled." on stderr means project quotas are off.

Every command goes through the command-runner seam (asyncio subprocess, timeout, no shell).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from storage_proxy.core.errors import BackendUnavailable
from storage_proxy.volumes.commands import CommandRunner

_KIB = 1024
_PROJECT_LINE = re.compile(r"^\s*(\d+)\s+([P-])\s+(.+?)\s*$")


class LfsError(BackendUnavailable):
    code, title = "lfs-failed", "The Lustre lfs command failed"


@dataclass(frozen=True, slots=True)
class ProjectQuota:
    prid: int
    used_bytes: int
    hard_limit_bytes: int | None  # None: no limit (lfs prints 0)
    files: int


def _value(token: str, what: str, text: str) -> int:
    cleaned = token.strip("[]*")
    if not cleaned.isdigit():
        raise LfsError(f"lfs quota printed {token!r} for {what}: {text.strip()[:200]}")
    return int(cleaned)


def parse_quota(prid: int, text: str) -> ProjectQuota:
    """The values line(s) of ``lfs quota -p ID <mount>`` (kbytes, limits; files)."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if "kbytes" in line.split()), None)
    if header is None:
        raise LfsError(f"lfs quota printed no quota table: {text.strip()[:200]}")
    tokens = " ".join(lines[header + 1 :]).split()
    if len(tokens) < 9:
        raise LfsError(f"lfs quota printed too few values: {text.strip()[:200]}")
    _mount, used, _soft, hard, _grace, files = tokens[:6]
    return ProjectQuota(
        prid=prid,
        used_bytes=_value(used, "kbytes", text) * _KIB,
        hard_limit_bytes=_value(hard, "limit", text) * _KIB or None,
        files=_value(files, "files", text),
    )


def parse_project(text: str) -> tuple[int, bool]:
    """``(project id, inherit flag)`` from ``lfs project -d DIR``."""
    for line in text.splitlines():
        m = _PROJECT_LINE.match(line)
        if m:
            return int(m.group(1)), m.group(2) == "P"
    raise LfsError(f"lfs project printed no project line: {text.strip()[:200]}")


def kib(limit_bytes: int | None) -> str:
    """A limit in whole KiB, rounded up; "0" removes it."""
    return str(-(-limit_bytes // _KIB)) if limit_bytes else "0"


class Lfs:
    """The ``lfs`` commands of one mounted Lustre filesystem."""

    def __init__(self, runner: CommandRunner, mount: Path, binary: str = "lfs") -> None:
        self.runner = runner
        self.mount = mount
        self.binary = binary

    async def run(self, *args: str) -> str:
        argv = [self.binary, *args]
        result = await self.runner.run(argv)
        if result.rc != 0:
            detail = result.stderr.strip() or result.stdout.strip() or f"exit status {result.rc}"
            raise LfsError(f"`{' '.join(argv)}` failed: {detail[:300]}")
        return result.stdout

    async def set_project(self, directory: Path, prid: int) -> None:
        await self.run("project", "-p", str(prid), "-r", "-s", str(directory))

    async def clear_project(self, directory: Path) -> None:
        await self.run("project", "-C", "-r", str(directory))

    async def project_of(self, directory: Path) -> tuple[int, bool]:
        return parse_project(await self.run("project", "-d", str(directory)))

    async def set_limit(self, prid: int, limit_bytes: int | None) -> None:
        await self.run(
            "setquota", "-p", str(prid), "-b", "0", "-B", kib(limit_bytes), str(self.mount)
        )

    async def quota(self, prid: int) -> ProjectQuota:
        return parse_quota(prid, await self.run("quota", "-p", str(prid), str(self.mount)))
