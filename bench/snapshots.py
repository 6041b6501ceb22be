#!/usr/bin/env python3
"""Snapshots and versions, through the daemon's HTTP API.

1. A snapshot of a 100,000-file vfolder on a loop-mounted XFS (``reflink=1``): ``POST
   /folder/snapshot`` (a task; the answer waits for it) against ``cp -a --reflink=always`` of the
   same tree on the same filesystem, same run.  Target: within 1.5x.
2. The same on a real CephFS (``../shared/infra/cephfs-up.sh``; ``--no-ceph`` skips it): a
   native ``.snap`` snapshot.  Target: < 100 ms (HTTP round trip included).
3. An overwrite of a 1 GiB file (``PUT`` on the file API) on the XFS volume, with the vfolder's
   versions on (``versions = 5``) and off.  Target: <= 1.1x (the kept version is a hard link).

    python bench/snapshots.py [--files 100000] [--dirs 1000] [--runs 3] [--no-ceph] [--strict]
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
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from daemon_proc import free_ports, stop_daemon
from usage_cephfs import SETTLE_TIMEOUT, populate_parallel, rfiles
from usage_scan import AUTH, SECRET, start_daemon

XFS_RATIO, CEPH_MS, VERSIONS_RATIO = 1.5, 100.0, 1.1
IMAGE_SIZE = 16 << 30  # sparse: the versions part keeps a few GiB
GiB = 1 << 30


def write_config(scratch: Path, volumes: dict[str, tuple[str, Path]], ports: list[int]) -> Path:
    q = json.dumps
    client, manager, internal = ports
    text = f"""
[storage-proxy]
data-dir = {q(str(scratch / "data"))}
secret = {q(SECRET + "-token-secret-0123456789")}
[api.client]
service-addr = {{ host = "127.0.0.1", port = {client} }}
[api.manager]
service-addr = {{ host = "127.0.0.1", port = {manager} }}
internal-addr = {{ host = "127.0.0.1", port = {internal} }}
secret = {q(SECRET)}
[logging]
level = "WARNING"
"""
    for name, (backend, path) in volumes.items():
        text += f'[volume.{name}]\nbackend = "{backend}"\npath = {q(str(path))}\n'
        if backend == "xfs":
            text += (
                f"[volume.{name}.options]\nfallback-to-proxy-quota = true\n"
                f"projects-file = {q(str(scratch / 'projects'))}\n"
                f"projid-file = {q(str(scratch / 'projid'))}\n"
            )
    path = scratch / "storage-proxy.toml"
    path.write_text(text)
    return path


class Api:
    def __init__(self, http: aiohttp.ClientSession, manager: str, client: str) -> None:
        self.http, self.manager, self.client = http, manager, client

    async def call(self, method: str, path: str, **body: object) -> dict[str, object]:
        async with self.http.request(method, self.manager + path, json=body, headers=AUTH) as r:
            assert r.status < 300, f"{path}: {r.status} {await r.text()}"
            return {} if r.status == 204 else await r.json()  # type: ignore[no-any-return]

    async def vfolder(self, volume: str) -> tuple[str, Path]:
        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        await self.call("POST", "/folder/create", volume=volume, vfid=vfid, owner="bench")
        mount = await self.call("GET", "/folder/mount", volume=volume, vfid=vfid)
        return vfid, Path(str(mount["path"]))

    async def snapshot_ms(self, volume: str, vfid: str, name: str) -> float:
        t0 = time.perf_counter()
        await self.call("POST", "/folder/snapshot", volume=volume, vfid=vfid, name=name)
        return (time.perf_counter() - t0) * 1000


async def wait_up(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):
        try:
            async with http.get(base + "/status") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not start")


def cp_reflink_ms(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", "--reflink=always", str(src), str(dst)], check=True)
    return (time.perf_counter() - t0) * 1000


async def gib_body(seed: int) -> AsyncIterator[bytes]:
    block = bytes([seed % 256]) * (8 << 20)
    for _ in range(GiB // len(block)):
        yield block


async def put_gib_ms(api: Api, token: str, volume: str, vfid: str, seed: int) -> float:
    url = f"{api.client}/api/v1/vfolders/{volume}/{vfid}/files/big.bin"
    t0 = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with api.http.put(url, data=gib_body(seed), headers=headers) as r:
        assert r.status == 201, await r.text()
    return (time.perf_counter() - t0) * 1000


async def run(args: argparse.Namespace, scratch: Path, xfs: Path, ceph: Path | None) -> bool:
    volumes = {"xfs": ("xfs", xfs / "vol")}
    if ceph is not None:
        volumes["ceph"] = ("cephfs", ceph / "vfroot")
    ports = free_ports(3)
    proc = start_daemon(write_config(scratch, volumes, ports), scratch / "daemon.log")
    ok = True
    try:
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            api = Api(http, f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[0]}")
            await wait_up(http, api.manager)
            ok &= await xfs_snapshot(api, args, xfs)
            if ceph is not None:
                ok &= await ceph_snapshot(api, args)
            ok &= await versions_overwrite(api, args)
    finally:
        stop_daemon(proc)
    return ok


async def xfs_snapshot(api: Api, args: argparse.Namespace, xfs: Path) -> bool:
    vfid, path = await api.vfolder("xfs")
    await asyncio.to_thread(populate_parallel, path, args.files, args.dirs)
    ours, theirs = [], []
    for i in range(args.runs):
        ours.append(await api.snapshot_ms("xfs", vfid, f"s{i}"))
        theirs.append(await asyncio.to_thread(cp_reflink_ms, path, xfs / f"cp{i}"))
    mine, ref = statistics.median(ours), statistics.median(theirs)
    passed = mine <= XFS_RATIO * ref
    print(f"snapshot of {args.files:,} files on XFS (reflink), median of {args.runs}:")
    print(f"  POST /folder/snapshot      {mine:9.0f} ms")
    print(f"  cp -a --reflink=always     {ref:9.0f} ms")
    verdict = "PASS" if passed else "FAIL"
    print(f"  ratio {mine / ref:.2f}x   target <= {XFS_RATIO}x  {verdict}")
    return passed


async def ceph_snapshot(api: Api, args: argparse.Namespace) -> bool:
    vfid, path = await api.vfolder("ceph")
    await asyncio.to_thread(populate_parallel, path, args.files, args.dirs)
    deadline = time.monotonic() + SETTLE_TIMEOUT  # a quiescent tree: the MDS has caught up
    while await asyncio.to_thread(rfiles, path) < args.files:
        if time.monotonic() > deadline:
            print("ceph.dir.rfiles did not settle in time; timing anyway")
            break
        await asyncio.sleep(0.2)
    runs = max(args.runs, 5)
    times = [await api.snapshot_ms("ceph", vfid, f"s{i}") for i in range(runs)]
    raw = [await asyncio.to_thread(mkdir_ms, path / ".snap" / f"raw{i}") for i in range(runs)]
    mine = statistics.median(times)
    passed = mine < CEPH_MS
    print(f"snapshot of {args.files:,} files on CephFS (.snap), median of {runs}:")
    print(f"  POST /folder/snapshot      {mine:9.1f} ms   target < {CEPH_MS:.0f} ms  "
          f"{'PASS' if passed else 'FAIL'}")  # fmt: skip
    print(f"  mkdir .snap/<name> itself  {statistics.median(raw):9.1f} ms")
    return passed


def mkdir_ms(path: Path) -> float:
    t0 = time.perf_counter()
    os.mkdir(path)
    return (time.perf_counter() - t0) * 1000


async def versions_overwrite(api: Api, args: argparse.Namespace) -> bool:
    """Each timed PUT starts from a clean page cache (``sync`` first, untimed): otherwise the
    run without versions would gain from dropping the replaced file's dirty pages unwritten."""
    token = str((await api.call("POST", "/token", user="bench"))["token"])
    vfids = {}
    for keep in (0, 5):
        vfids[keep], _ = await api.vfolder("xfs")
        await api.call("PUT", "/folder/versions", volume="xfs", vfid=vfids[keep], versions=keep)
        await put_gib_ms(api, token, "xfs", vfids[keep], 0)  # the file to overwrite
    times: dict[int, list[float]] = {0: [], 5: []}
    for i in range(args.runs):
        for keep in (0, 5):  # interleaved: drift hits both alike
            await asyncio.to_thread(os.sync)
            times[keep].append(await put_gib_ms(api, token, "xfs", vfids[keep], i + 1))
    figures = {keep: statistics.median(t) for keep, t in times.items()}
    ratio = figures[5] / figures[0]
    passed = ratio <= VERSIONS_RATIO
    print(f"overwrite of a 1 GiB file on XFS (PUT on the file API), median of {args.runs}:")
    print(f"  versions off               {figures[0]:9.0f} ms")
    print(f"  versions = 5               {figures[5]:9.0f} ms")
    print(f"  ratio {ratio:.2f}x   target <= {VERSIONS_RATIO}x  {'PASS' if passed else 'FAIL'}")
    return passed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dirs", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-ceph", action="store_true", help="skip the CephFS part")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sp-bench-snap-") as tmp:
        scratch = Path(tmp)
        image, xfs = scratch / "xfs.img", scratch / "xfs"
        xfs.mkdir()
        with open(image, "wb") as f:
            f.truncate(IMAGE_SIZE)
        subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(xfs)], check=True)
        ceph_dir = scratch / "ceph"
        env = {**os.environ, "CEPH_DIR": str(ceph_dir)}
        try:
            ceph = None
            if not args.no_ceph:
                ceph_dir.mkdir()
                subprocess.run(
                    ["bash", str(args.shared / "infra" / "cephfs-up.sh")],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                ceph = ceph_dir / "mnt"
                (ceph / "vfroot").mkdir()
            ok = asyncio.run(run(args, scratch, xfs, ceph))
        finally:
            if not args.no_ceph:
                subprocess.run(
                    ["bash", str(args.shared / "infra" / "cephfs-down.sh")],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            subprocess.run(["umount", str(xfs)], check=False)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
