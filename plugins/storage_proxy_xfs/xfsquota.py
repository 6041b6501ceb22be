"""``xfs_quota`` as an async API: the commands the backend runs and parsers for their output.

The parsers follow the formats xfs_quota documents and prints (``quota/report.c`` and
``quota/state.c`` in xfsprogs): ``report -p -b -n -N`` prints one line per project,
``#<id> <used> <soft> <hard> <warns> [<grace>]`` with block counts in KiB; ``state -p`` prints
``Accounting: ON|OFF`` / ``Enforcement: ON|OFF`` under ``Project quota state on …``.
xfs_quota exits 0 on many failures, so anything it prints on stderr counts as a failure too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from storage_proxy.core.errors import BackendUnavailable

from .runner import CommandRunner

_REPORT_LINE = re.compile(r"^#(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\b")
_KIB = 1024


class XfsQuotaError(BackendUnavailable):
    """The quota tool failed: the storage cannot answer now (503, as every backend's tool)."""

    code, title = "xfs-quota-failed", "xfs_quota failed"


@dataclass(frozen=True, slots=True)
class ProjectQuota:
    prid: int
    used_bytes: int
    soft_limit_bytes: int | None  # None: no limit (xfs_quota prints 0)
    hard_limit_bytes: int | None


@dataclass(frozen=True, slots=True)
class ProjectQuotaState:
    accounting: bool
    enforcement: bool


def parse_report(text: str) -> dict[int, ProjectQuota]:
    """Project id -> usage and limits, from ``report -p -b -n`` (header lines are skipped)."""
    out = {}
    for line in text.splitlines():
        m = _REPORT_LINE.match(line.strip())
        if m:
            prid, used, soft, hard = (int(g) for g in m.groups())
            out[prid] = ProjectQuota(prid, used * _KIB, soft * _KIB or None, hard * _KIB or None)
    return out


def parse_state(text: str) -> ProjectQuotaState | None:
    """The project quota state, or ``None`` when xfs_quota says project quotas are not enabled."""
    section = text.partition("Project quota state on")[2]
    if not section:
        return None
    acct = re.search(r"Accounting:\s*(ON|OFF)", section)
    enfd = re.search(r"Enforcement:\s*(ON|OFF)", section)
    return ProjectQuotaState(
        accounting=bool(acct and acct.group(1) == "ON"),
        enforcement=bool(enfd and enfd.group(1) == "ON"),
    )


def limit_arg(limit_bytes: int | None) -> str:
    """Limits are set in whole KiB (what the report shows), rounded up; 0 removes the limit."""
    return f"{-(-limit_bytes // _KIB)}k" if limit_bytes else "0"


class XfsQuota:
    """The xfs_quota commands of one mounted filesystem."""

    def __init__(
        self,
        runner: CommandRunner,
        mount_point: Path,
        projects_file: Path,
        projid_file: Path,
        binary: str = "xfs_quota",
    ) -> None:
        self.runner = runner
        self.mount_point = mount_point
        self.projects_file = projects_file
        self.projid_file = projid_file
        self.binary = binary

    def argv(self, command: str) -> list[str]:
        return [
            self.binary,
            "-x",
            "-D",
            str(self.projects_file),
            "-P",
            str(self.projid_file),
            "-c",
            command,
            str(self.mount_point),
        ]

    async def run(self, command: str) -> str:
        result = await self.runner.run(self.argv(command))
        if result.rc != 0 or result.stderr.strip():
            detail = result.stderr.strip() or result.stdout.strip() or f"exit status {result.rc}"
            raise XfsQuotaError(
                f"`xfs_quota -x -c '{command}' {self.mount_point}` failed: {detail}"
            )
        return result.stdout

    async def state(self) -> ProjectQuotaState | None:
        return parse_state(await self.run("state -p"))

    async def assign_project(self, path: Path, prid: int) -> None:
        """Tag the directory tree with the project id (inherited by everything created in it)."""
        await self.run(f"project -s -p {path} {prid}")

    async def set_limit(self, prid: int, limit_bytes: int | None) -> None:
        arg = limit_arg(limit_bytes)
        await self.run(f"limit -p bsoft={arg} bhard={arg} {prid}")

    async def report(self) -> dict[int, ProjectQuota]:
        """Usage and limits of every project on the filesystem, in one call."""
        return parse_report(await self.run("report -p -b -n -N"))
