"""The command-runner seam: every external command a backend runs goes through here.

``xfs_quota`` (xfs backend) and ``lfs`` (ddn backend) run as asyncio subprocesses, never through
a shell, each with a timeout: a tool that hangs is killed and reported, never waited on forever.
Tests inject a fake runner that records the argv and answers with outputs captured from the real
tool, or put a fake tool on ``PATH`` that speaks its documented output formats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str


class CommandRunner:
    """Runs a command with asyncio subprocesses; never through a shell."""

    def __init__(self, timeout: float = 60.0) -> None:
        self._timeout = timeout

    async def run(self, argv: Sequence[str]) -> CommandResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: command not found")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return CommandResult(-9, "", f"{argv[0]}: timed out after {self._timeout} s")
        assert proc.returncode is not None
        return CommandResult(
            proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )
