#!/usr/bin/env python3
"""Usage of a 100,000-file vfolder on CephFS (rstats, no walk) beside the vfs scan of the same tree.

Starts a throw-away single-node Ceph with ``../shared/infra/cephfs-up.sh`` (ceph-fuse), a daemon
with one ``cephfs`` volume on it and one ``vfs`` volume on local disk, fills one vfolder on each
with the same tree, waits for Ceph's lazy recursive stats to settle, then times
``GET /folder/usage`` on both (HTTP round trip included).  Target: CephFS < 50 ms.

    python bench/usage_cephfs.py [--files 100000] [--dirs 1000] [--runs 9] [--shared DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from daemon_proc import free_ports, stop_daemon
from usage_scan import AUTH, SECRET, populate, start_daemon

TARGET_MS = 50.0
SETTLE_TIMEOUT = 120.0


def write_config(scratch: Path, ceph_root: Path, client: int, manager: int, internal: int) -> Path:
    q = json.dumps
    text = f"""
[storage-proxy]
data-dir = {q(str(scratch / "data"))}
[api.client]
service-addr = {{ host = "127.0.0.1", port = {client} }}
[api.manager]
service-addr = {{ host = "127.0.0.1", port = {manager} }}
internal-addr = {{ host = "127.0.0.1", port = {internal} }}
secret = {q(SECRET)}
[volume.ceph]
backend = "cephfs"
path = {q(str(ceph_root))}
[volume.local]
backend = "vfs"
path = {q(str(scratch / "local"))}
[logging]
level = "WARNING"
"""
    path = scratch / "storage-proxy.toml"
    path.write_text(text)
    return path


def rfiles(path: Path) -> int:
    return int(os.getxattr(path, "ceph.dir.rfiles"))


def populate_parallel(root: Path, files: int, dirs: int, threads: int = 16) -> None:
    """ceph-fuse creates files one round trip at a time: spread the tops over threads."""
    tops = max(1, dirs // 100)
    per_top = files // tops
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda t: populate(root / f"part{t:02d}", per_top, dirs // tops, seed=t),
                range(tops),
            )
        )


async def time_usage(http: aiohttp.ClientSession, base: str, volume: str, vfid: str) -> float:
    t0 = time.perf_counter()
    async with http.get(
        base + "/folder/usage", params={"volume": volume, "vfid": vfid}, headers=AUTH
    ) as r:
        assert r.status == 200, await r.text()
        await r.read()
    return (time.perf_counter() - t0) * 1000


async def run(args: argparse.Namespace, scratch: Path, ceph_mnt: Path) -> int:
    ceph_root = ceph_mnt / "vfroot"
    ceph_root.mkdir(exist_ok=True)
    client, manager, internal = free_ports(3)
    config = write_config(scratch, ceph_root, client, manager, internal)
    proc = start_daemon(config, scratch / "daemon.log")
    base = f"http://127.0.0.1:{manager}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(base + "/status") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
            mounts = {}
            for volume in ("ceph", "local"):
                async with http.post(
                    base + "/folder/create", json={"volume": volume, "vfid": vfid}, headers=AUTH
                ) as r:
                    assert r.status == 204, await r.text()
                async with http.get(
                    base + "/folder/mount", json={"volume": volume, "vfid": vfid}, headers=AUTH
                ) as r:
                    mounts[volume] = Path((await r.json())["path"])
            for volume, path in mounts.items():
                t0 = time.perf_counter()
                await asyncio.to_thread(populate_parallel, path, args.files, args.dirs)
                print(f"{volume}: created {args.files:,} files in {time.perf_counter() - t0:.1f}s")
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while await asyncio.to_thread(rfiles, mounts["ceph"]) < args.files:
                if time.monotonic() > deadline:
                    print("ceph.dir.rfiles did not settle in time")
                    return 2
                await asyncio.sleep(0.2)
            figures = {}
            for volume in ("ceph", "local"):
                await time_usage(http, base, volume, vfid)  # warm
                figures[volume] = [
                    await time_usage(http, base, volume, vfid) for _ in range(args.runs)
                ]
    finally:
        stop_daemon(proc)
    ceph_ms, local_ms = (statistics.median(figures[v]) for v in ("ceph", "local"))
    print(f"GET /folder/usage, {args.files:,} files in {args.dirs:,} dirs, median of {args.runs}:")
    print(
        f"  cephfs (rstats)   {ceph_ms:8.1f} ms   target < {TARGET_MS:.0f} ms  "
        f"{'PASS' if ceph_ms < TARGET_MS else 'FAIL'}"
    )
    print(f"  vfs (tree scan)   {local_ms:8.1f} ms   ({local_ms / ceph_ms:.0f}x the cephfs answer)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dirs", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared"
    )
    args = ap.parse_args()
    infra = args.shared / "infra"
    with tempfile.TemporaryDirectory(prefix="sp-bench-ceph-") as tmp:
        scratch = Path(tmp)
        ceph_dir = scratch / "ceph"
        ceph_dir.mkdir()
        env = {**os.environ, "CEPH_DIR": str(ceph_dir)}
        subprocess.run(
            ["bash", str(infra / "cephfs-up.sh")], env=env, check=True, stdout=subprocess.DEVNULL
        )
        try:
            return asyncio.run(run(args, scratch, ceph_dir / "mnt"))
        finally:
            subprocess.run(
                ["bash", str(infra / "cephfs-down.sh")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


if __name__ == "__main__":
    sys.exit(main())
