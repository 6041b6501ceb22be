"""One way to run ``storage-proxy-client`` against a test daemon, shared by the CLI tests.

The CLI runs as a subprocess, as a person would run it, with the daemon's client URL and a user
token in its environment and its state (interrupted uploads) kept below ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from api_fixtures import Daemon


class CliResult(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        """What a person at the terminal sees: stdout then stderr."""
        return self.out + self.err


def cli_env(daemon: Daemon, tmp_path: Path, token: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "STORAGE_PROXY_URL": str(daemon.client.make_url("")).rstrip("/"),
        "STORAGE_PROXY_TOKEN": token
        or daemon.ctx.tokens.issue_user("alice", [], timedelta(hours=1)),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


async def start_cli(
    daemon: Daemon, tmp_path: Path, *args: str, token: str | None = None, quiet: bool = True
) -> asyncio.subprocess.Process:
    """The CLI started (stdout and stderr piped), for a test that acts while it runs."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storage_proxy.client.cli",
        *(("-q",) if quiet else ()),
        *args,
        env=cli_env(daemon, tmp_path, token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def cli(
    daemon: Daemon, tmp_path: Path, *args: str, token: str | None = None, quiet: bool = True
) -> CliResult:
    """Run the CLI to its end: exit code, stdout, stderr (``-q``: no progress bars, unless
    ``quiet`` is False)."""
    proc = await start_cli(daemon, tmp_path, *args, token=token, quiet=quiet)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


#: The vfolder the CLI tests use (owned by alice, on vol1).
VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"


async def alice_folder(daemon: Daemon) -> Path:
    """Create alice's vfolder ``VFID`` on vol1; its directory on disk."""
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID, owner="alice")
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    return Path(mount["path"])
