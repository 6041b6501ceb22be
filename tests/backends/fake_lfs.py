#!/usr/bin/env python3
"""A fake ``lfs`` for tests: the subcommands the ddn backend runs, in lfs's own output formats.

No Lustre filesystem can be mounted here (no Lustre client or servers), so tests put this script
on ``PATH`` as ``lfs`` (or name it in ``lfs-binary``) and the production code runs it through
the real command runner.  It follows the Lustre manual pages lfs-project(1), lfs-setquota(1)
and lfs-quota(1) and the formats of ``lustre/utils/lfs.c``:

* ``lfs project -p ID [-r] [-s] DIR`` tags DIR (and, with ``-s``, what is created below it);
  ``lfs project -d DIR`` prints ``%5u %c %s`` (id, ``P`` when inheriting, path);
  ``lfs project -C [-r] DIR`` clears the tag;
* ``lfs setquota -p ID [-b N] [-B N] [-i N] [-I N] MOUNT`` (KiB, or with a k/m/g/t/p suffix);
* ``lfs quota -p ID MOUNT`` prints the title, the header and the values, the filesystem on a
  line of its own when it is longer than 15 characters, ``*`` after a used value over its limit.

State lives in the JSON file named by ``FAKE_LFS_STATE``: project tags by directory, limits by
project id, and switches (``project_quota_off``, ``hang``, ``usage_override``).  A project's
usage is what is really stored below the directories tagged with it (KiB, rounded up per file,
as blocks are counted).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

UNITS = {"k": 1, "m": 1 << 10, "g": 1 << 20, "t": 1 << 30, "p": 1 << 40}


def load() -> tuple[Path, dict[str, Any]]:
    path = Path(os.environ["FAKE_LFS_STATE"])
    state = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("projects", {})
    state.setdefault("limits", {})
    state.setdefault("usage_override", {})
    return path, state


def save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def fail(message: str, rc: int = 1) -> int:
    print(message, file=sys.stderr)
    return rc


def kib(value: str) -> int:
    unit = value[-1].lower() if value[-1].isalpha() else "k"
    number = value[:-1] if value[-1].isalpha() else value
    if unit not in UNITS or not number.isdigit():
        raise ValueError(value)
    return int(number) * UNITS[unit]


def project_of(state: dict[str, Any], path: str) -> tuple[int, bool]:
    """The tag of ``path``: its own, or inherited from the nearest tagged ancestor."""
    probe = os.path.realpath(path)
    while True:
        tag = state["projects"].get(probe)
        if tag is not None:
            return tag["id"], tag["inherit"] or probe == os.path.realpath(path)
        if probe == "/":
            return 0, False
        probe = os.path.dirname(probe)


def usage(state: dict[str, Any], mount: str, prid: int) -> tuple[int, int]:
    """(KiB, files) stored under the directories of ``mount`` tagged with ``prid``."""
    override = state["usage_override"].get(str(prid))
    kbytes = files = 0
    for d, dirs, names in os.walk(mount):
        if project_of(state, d)[0] != prid:
            continue
        files += len(dirs) + len(names)
        for name in names:
            try:
                kbytes += -(-os.lstat(os.path.join(d, name)).st_size // 1024)
            except FileNotFoundError:
                pass
    return (kbytes if override is None else -(-override // 1024)), files


def cmd_project(state: dict[str, Any], args: list[str]) -> int:
    if not args:
        return fail("lfs project: missing directory")
    target = args[-1]
    if not os.path.isdir(target):
        return fail(
            f"lfs project: failed to get xattr for '{target}': No such file or directory", 2
        )
    if state.get("project_quota_off"):
        return fail(f"lfs project: failed to set xattr for '{target}': Operation not supported", 95)
    real = os.path.realpath(target)
    if "-d" in args:
        prid, inherit = project_of(state, target)
        print(f"{prid:5d} {'P' if inherit else '-'} {target}")
        return 0
    if "-C" in args:
        for key in [k for k in state["projects"] if k == real or k.startswith(real + "/")]:
            del state["projects"][key]
        return 0
    if "-p" not in args:
        return fail("lfs project: nothing to do")
    prid = int(args[args.index("-p") + 1])
    state["projects"][real] = {"id": prid, "inherit": "-s" in args}
    return 0


def cmd_setquota(state: dict[str, Any], args: list[str]) -> int:
    if state.get("project_quota_off"):
        return fail("lfs setquota: quotactl failed: Operation not supported\nsetquota failed", 95)
    if "-p" not in args or len(args) < 3:
        return fail("lfs setquota: either -u, -g or -p must be specified")
    prid = args[args.index("-p") + 1]
    limits = state["limits"].setdefault(prid, {"b": 0, "B": 0, "i": 0, "I": 0})
    for flag in ("-b", "-B", "-i", "-I"):
        if flag in args:
            try:
                limits[flag[1]] = kib(args[args.index(flag) + 1])
            except (ValueError, IndexError):
                return fail(f"lfs setquota: bad limit value for {flag}", 22)
    return 0


def cmd_quota(state: dict[str, Any], args: list[str]) -> int:
    if "-p" not in args or len(args) < 3:
        return fail("lfs quota: usage: quota [-q] [-v] [-h] [-u|-g|-p <id>] <filesystem>")
    prid, mount = int(args[args.index("-p") + 1]), args[-1]
    if not os.path.isdir(mount):
        return fail(f"lfs quota: '{mount}' is not on a Lustre filesystem", 2)
    if state.get("project_quota_off"):
        print(f"Disk quotas for prj {prid} (pid {prid}):")
        return fail("prj quotas are not enabled.", 3)
    limits = state["limits"].get(str(prid), {"b": 0, "B": 0, "i": 0, "I": 0})
    kbytes, files = usage(state, mount, prid)
    over = "*" if limits["B"] and kbytes >= limits["B"] else " "
    if "-q" not in args:
        print(f"Disk quotas for prj {prid} (pid {prid}):")
        print(
            f"{'Filesystem':>15s}{'kbytes':>8s} {'quota':>7s}{'limit':>8s}{'grace':>8s}"
            f"{'files':>8s} {'quota':>7s}{'limit':>8s}{'grace':>8s}"
        )
    line = f"{mount}\n{'':15s}" if len(mount) > 15 else f"{mount:>15s}"
    line += f" {kbytes:7d}{over} {limits['b']:6d} {limits['B']:7d} {'-':>7s}"
    line += f" {files:7d}  {limits['i']:6d} {limits['I']:7d} {'-':>7s}"
    print(line)
    return 0


def main(argv: list[str]) -> int:
    lock = os.open(os.environ["FAKE_LFS_STATE"] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the proxy may run several lfs at once
    path, state = load()
    if state.get("hang"):
        os.close(lock)
        time.sleep(3600)
    if not argv:
        return fail("usage: lfs <command> [options]")
    commands = {"project": cmd_project, "setquota": cmd_setquota, "quota": cmd_quota}
    command = commands.get(argv[0])
    if command is None:
        return fail(f"lfs: unknown command '{argv[0]}'")
    state.setdefault("calls", []).append(argv)
    rc = command(state, argv[1:])
    save(path, state)
    return rc


class FakeLfs:
    """The test side: installs the fake as an ``lfs`` executable and reads/changes its state."""

    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.state_file = directory / "lfs-state.json"
        self.binary = self.bin / "lfs"
        script = (
            "#!/bin/sh\n"
            f"FAKE_LFS_STATE={shlex.quote(str(self.state_file))} "
            f'exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} "$@"\n'
        )
        self.binary.write_text(script)
        self.binary.chmod(0o755)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def update(self, **changes: Any) -> None:
        state = self.state()
        state.update(changes)
        self.state_file.write_text(json.dumps(state))

    def report_usage(self, prid: int, nbytes: int) -> None:
        state = self.state()
        state.setdefault("usage_override", {})[str(prid)] = nbytes
        self.state_file.write_text(json.dumps(state))

    def calls(self, verb: str = "") -> list[list[str]]:
        return [c for c in self.state().get("calls", []) if not verb or c[0] == verb]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
