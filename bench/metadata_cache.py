"""Permission checks and usage reads with and without the Redis cache, in the same run.

Every client file operation checks the caller's right on the vfolder (its registry record and its
ACL).  This times that check N times against the metadata store alone (SQLite, the embedded
default) and through the cache (a real redis-server started here), plus usage reads of a vfolder
of --files files: a tree walk every time without the cache, one walk for every node with it.

    python bench/metadata_cache.py [--checks 5000] [--files 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from daemon_proc import free_ports

from storage_proxy.config import validate
from storage_proxy.context import RootContext, build_root_context
from storage_proxy.core.types import QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.services.tokens import UserClaims

OFF = {
    k: "0"
    for k in (
        "usage-scan-interval",
        "orphan-scan-interval",
        "trash-purge-interval",
        "retention-interval",
        "scrub-interval",
    )
}


def config(root: Path, redis_port: int | None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "storage-proxy": {"data-dir": str(root / "data"), "scan-workers": 0, "secret": "x" * 32},
        "api": {"manager": {"secret": "bench-manager-secret"}},
        "volume": {"vol1": {"backend": "vfs", "path": str(root / "vol1")}},
        "jobs": OFF,
    }
    if redis_port is not None:
        raw["redis"] = {"addr": {"host": "127.0.0.1", "port": redis_port}}
    return validate(raw)


async def timed_checks(ctx: RootContext, vfid: VFolderID, n: int) -> list[float]:
    user = UserClaims(sub="alice", groups=())
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await ctx.permissions.effective(user, "vol1", vfid)
        out.append(time.perf_counter() - start)
    return out


async def timed_usage(ctx: RootContext, vfid: VFolderID, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await ctx.usage.get("vol1", vfid)
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> str:
    s = sorted(samples)
    return (
        f"median {statistics.median(s) * 1e6:8.1f} µs   p99 {s[int(len(s) * 0.99)] * 1e6:8.1f} µs"
    )


async def run(args: argparse.Namespace, root: Path, port: int) -> None:
    plain = await build_root_context(config(root, None))
    cached = await build_root_context(config(root, port))
    try:
        qsid = QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())
        vfid = VFolderID(qsid, uuid.uuid4())
        volume = plain.volumes.get("vol1")
        await volume.quota_model.create_quota_scope(qsid, None)
        await volume.create_vfolder(vfid)
        await plain.metadata.update_vfolder("vol1", str(vfid), owner="alice", kind="user")
        tree = await volume.get_vfolder_mount(vfid)
        for i in range(args.files):
            d = tree / f"d{i % 100}"
            d.mkdir(exist_ok=True)
            (d / f"f{i}").write_bytes(b"x" * 10)

        print(f"permission check (vfolder record + ACL), {args.checks} times:")
        store = await timed_checks(plain, vfid, args.checks)
        cache = await timed_checks(cached, vfid, args.checks)
        print(f"  metadata store (SQLite)  {summary(store)}")
        print(f"  through the cache        {summary(cache)}")
        print(
            f"  ratio (store / cache)    {statistics.median(store) / statistics.median(cache):.1f}x"
        )
        print(f"usage of a vfolder of {args.files} files, 20 reads:")
        walk = await timed_usage(plain, vfid, 20)
        hit = await timed_usage(cached, vfid, 20)
        print(f"  tree walk every time     {summary(walk)}")
        print(
            f"  through the cache        {summary(hit[1:])}   (first read walks: "
            f"{hit[0] * 1e3:.1f} ms)"
        )
    finally:
        await cached.close()
        await plain.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--files", type=int, default=20000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sp-bench-cache-"))
    [port] = free_ports(1)
    server = shutil.which("redis-server") or "redis-server"
    redis = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        asyncio.run(run(args, root, port))
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
