"""A large upload in parallel parts (tus concatenation) against one stream, and what the join
writes to disk.

The issue-18 figure: a 1 GiB file uploaded through the client library the CLI uses
(``storage-proxy-client upload``), (a) as one tus upload (``--parallel 1``), (b) as N partial
uploads PATCHed at once and one final upload joining them (``--parallel N``), alternating which
goes first, into the same daemon in the same run; each includes the CLI's sha256 check of the
stored file.  "No extra copy on disk" is measured, not assumed: the daemon's ``write_bytes``
(``/proc/<pid>/io``, the daemon and its workers) during each upload, divided by the file size —
about 1.0 when the final upload shares the parts' blocks (XFS with reflink, on a loop-mounted
image made here when run as root with mkfs.xfs), about 2.0 where the filesystem must copy them
(``--fs plain``: the scratch directory's own filesystem, e.g. ext4 or tmpfs).

    python bench/parallel_chunks.py                     # 1 GiB, 3 rounds, 4 parts, XFS, num-proc 2
    python bench/parallel_chunks.py --fs plain --size-mib 256 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from small_files import Ours
from transfers import VFID, BenchError, source_revision

from storage_proxy.client import parallel, transfer

TARGET = 1.0  # parallel rate / single-stream rate
COPY_LIMIT = 1.25  # parallel write_bytes / file size: no second copy of the data


@contextlib.contextmanager
def xfs_at(mountpoint: Path, image: Path, size_gib: int) -> Iterator[None]:
    """A fresh XFS (mkfs's default reflink=1) loop-mounted at ``mountpoint``."""
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        raise BenchError("--fs xfs needs root and mkfs.xfs (or run with --fs plain)")
    with open(image, "wb") as f:
        f.truncate(size_gib << 30)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    try:
        yield
    finally:
        if subprocess.run(["umount", str(mountpoint)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)])


def written(pid: int) -> int:
    """write_bytes of ``pid`` and every process below it."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += written(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def make_source(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with open(path, "wb") as f:
        for i in range(0, size, len(block)):
            f.write((i.to_bytes(8, "big") + block)[: min(len(block), size - i)])


async def upload_once(
    client: str, token: str, volume: str, src: Path, remote: str, parts: int, state: Path
) -> float:
    target = transfer.Target(client, volume, VFID, remote)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        start = time.perf_counter()
        await parallel.upload(
            session, src, target, state=transfer.UploadState(state), parallel=parts
        )
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--fs", choices=["xfs", "plain"], default="xfs")
    p.add_argument("--strict", action="store_true")
    args = p.parse_args(argv)
    size = args.size_mib << 20
    load0, revision = os.getloadavg()[0], source_revision()
    rates: dict[str, list[float]] = {"single": [], "parallel": []}
    copies: dict[str, list[float]] = {"single": [], "parallel": []}
    with tempfile.TemporaryDirectory(prefix="sp-bench-chunks-") as tmp:
        scratch = Path(tmp)
        src = scratch / "src.bin"
        make_source(src, size)
        ours = Ours(scratch, args.num_proc)
        volume_dir = scratch / ours.volume
        mounted = (
            xfs_at(volume_dir, scratch / "xfs.img", max(4, 3 * args.size_mib // 1024 + 2))
            if args.fs == "xfs"
            else contextlib.nullcontext()
        )
        with mounted, ours.running() as pids:
            root = ours.ensure_vfolder()
            token = ours.user_token()
            print(f"{args.rounds} rounds, {args.size_mib} MiB, {args.parallel} parts, "
                  f"volume on {args.fs}, num-proc {args.num_proc}", flush=True)  # fmt: skip
            for rnd in range(args.rounds):
                sides = ["single", "parallel"] if rnd % 2 == 0 else ["parallel", "single"]
                for side in sides:
                    remote = f"{side}-{rnd}.bin"
                    before = written(pids[0])
                    seconds = asyncio.run(
                        upload_once(
                            ours.client,
                            token,
                            ours.volume,
                            src,
                            remote,
                            1 if side == "single" else args.parallel,
                            scratch / "state.json",
                        )  # fmt: skip
                    )
                    os.sync()
                    copies[side].append((written(pids[0]) - before) / size)
                    if (root / remote).stat().st_size != size:
                        raise BenchError(f"{remote} was not stored whole")
                    (root / remote).unlink()  # the next round starts on the same free space
                    rates[side].append(size / seconds / (1 << 20))
                    print(f"  round {rnd + 1} {side:<8} {rates[side][-1]:7.0f} MiB/s  "
                          f"daemon wrote {copies[side][-1]:.2f}x the file", flush=True)  # fmt: skip
    single, par = statistics.median(rates["single"]), statistics.median(rates["parallel"])
    copy_single, copy_par = (
        statistics.median(copies["single"]),
        statistics.median(copies["parallel"]),
    )
    ok_rate, ok_copy = par / single >= TARGET, copy_par <= COPY_LIMIT
    load1 = os.getloadavg()[0]
    print(f"\nparallel chunks: medians of {args.rounds} rounds; ours {revision}; volume on "
          f"{args.fs}; load average {load0:.2f} -> {load1:.2f} (shared machine)")  # fmt: skip
    print(f"one stream          {single:7.0f} MiB/s   daemon wrote {copy_single:.2f}x the file")
    print(f"{args.parallel} parts + final    {par:7.0f} MiB/s   daemon wrote {copy_par:.2f}x the "
          f"file   {par / single:.2f}x the one-stream rate")  # fmt: skip
    print(f"target: parallel >= {TARGET:.1f}x one stream: {'PASS' if ok_rate else 'FAIL'}; "
          f"no extra copy (<= {COPY_LIMIT}x): {'PASS' if ok_copy else 'FAIL'}")  # fmt: skip
    return 1 if args.strict and not (ok_rate and ok_copy) else 0


if __name__ == "__main__":
    sys.exit(main())
