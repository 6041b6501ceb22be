"""Benchmarks of the Delta Lake S3 view against a real moto S3 server; prints ratios of one run.

- GET of a 64 MiB allowed file in proxy mode vs reading it from the S3 server directly (≥ 0.8×)
- HEAD of an allowed file, warm cache: median added latency over a direct HEAD (≤ 2 ms)
- first request to a table of 10,000 files across 100 partitions, cold cache (< 1 s)
- backend client: aiobotocore on the loop vs boto3 in threads (HEAD median, 64 MiB GET)

Usage: python bench/delta_view.py [--size-mib 64] [--heads 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import boto3
import pyarrow as pa
from botocore.config import Config
from deltalake import write_deltalake

from storage_proxy.deltaview.config import S3Backend, validate
from storage_proxy.deltaview.store import S3Store
from storage_proxy.deltaview.testing import MotoServer, free_port

KEY, SECRET = "AKIDBENCH0001", "bench-secret"


def s3_client(endpoint: str, key: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def add(path: str, region: str, size: int) -> str:
    return json.dumps(
        {
            "add": {
                "path": path,
                "partitionValues": {"region": region},
                "size": size,
                "modificationTime": 0,
                "dataChange": True,
            }
        }
    )


def setup(moto: MotoServer, size: int) -> Any:
    s3 = s3_client(moto.endpoint, "testing", "testing")
    s3.create_bucket(Bucket="bench")
    opts = moto.storage_options()
    write_deltalake(
        "s3://bench/big",
        pa.table({"region": ["eu"], "v": [1]}),
        partition_by=["region"],
        storage_options=opts,
    )
    s3.put_object(Bucket="bench", Key="big/region=eu/big.bin", Body=b"\x01" * size)
    s3.put_object(
        Bucket="bench",
        Key="big/_delta_log/00000000000000000001.json",
        Body=add("region=eu/big.bin", "eu", size),
    )
    write_deltalake(
        "s3://bench/wide",
        pa.table({"region": ["p0"], "v": [1]}),
        partition_by=["region"],
        storage_options=opts,
    )
    lines = [add(f"region=p{i % 100}/f{i:05d}.parquet", f"p{i % 100}", 100) for i in range(10_000)]
    s3.put_object(
        Bucket="bench", Key="wide/_delta_log/00000000000000000001.json", Body="\n".join(lines)
    )
    s3.put_object(Bucket="bench", Key="wide/region=p7/f00007.parquet", Body=b"x" * 100)
    return s3


class ViewProcess:
    """``delta-view --config`` in a subprocess."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        fd, self.path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({**raw, "port": self.port}, f)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ViewProcess:
        code = "from storage_proxy.deltaview.cli import delta_view; delta_view()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "--config", self.path], stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the view did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
        os.unlink(self.path)


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--heads", type=int, default=200)
    args = ap.parse_args()
    size = args.size_mib * 1024 * 1024
    moto = MotoServer().start()
    try:
        direct = setup(moto, size)
        raw = {
            "port": 0,
            "metricsPort": None,
            "tableMapping": {"big": "s3://bench/big", "wide": "s3://bench/wide"},
            "allowedPartitions": {"big": [{"region": "eu"}], "wide": [{"region": "p7"}]},
            "credentials": [{"accessKeyId": KEY, "secretAccessKey": SECRET, "user": "bench"}],
            "s3": {
                "endpoint": moto.endpoint,
                "region": "us-east-1",
                "accessKeyId": "testing",
                "secretAccessKey": "testing",
            },
        }
        validate(raw)
        view = ViewProcess(raw).start()  # its own process: no GIL shared with the client
        via = s3_client(view.endpoint, KEY, SECRET)

        # cold authorization: the very first request to the 10,000-file table
        cold = timed(
            lambda: via.head_object(Bucket="datalake", Key="wide/region=p7/f00007.parquet")
        )
        print(f"cold first request, 10,000 files / 100 partitions: {cold * 1000:.0f} ms (< 1000)")

        def get_direct() -> None:
            body = direct.get_object(Bucket="bench", Key="big/region=eu/big.bin")["Body"]
            while body.read(1 << 20):
                pass

        def get_view() -> None:
            body = via.get_object(Bucket="datalake", Key="big/region=eu/big.bin")["Body"]
            while body.read(1 << 20):
                pass

        get_view()  # warm
        td = min(timed(get_direct) for _ in range(3))
        tv = min(timed(get_view) for _ in range(3))
        mib = args.size_mib
        print(
            f"GET {mib} MiB: direct {mib / td:.0f} MiB/s, view {mib / tv:.0f} MiB/s, "
            f"ratio {td / tv:.2f}x (>= 0.8)"
        )

        def head_direct() -> None:
            direct.head_object(Bucket="bench", Key="big/region=eu/big.bin")

        def head_view() -> None:
            via.head_object(Bucket="datalake", Key="big/region=eu/big.bin")

        for _ in range(20):
            head_direct()
            head_view()
        hd = statistics.median(timed(head_direct) for _ in range(args.heads))
        hv = statistics.median(timed(head_view) for _ in range(args.heads))
        print(
            f"HEAD median: direct {hd * 1000:.2f} ms, view {hv * 1000:.2f} ms, "
            f"added {(hv - hd) * 1000:+.2f} ms (<= 2)"
        )
        view.stop()
        asyncio.run(compare_clients(moto, args.heads))
    finally:
        moto.stop()


async def compare_clients(moto: MotoServer, heads: int) -> None:
    """Why aiobotocore: the same HEADs and GET, on the loop vs boto3 in a thread."""
    store = await S3Store.open(S3Backend(moto.endpoint, "us-east-1", "testing", "testing"))
    sync = s3_client(moto.endpoint, "testing", "testing")
    key = "big/region=eu/big.bin"
    try:
        a, b = [], []
        for _ in range(heads):
            t0 = time.perf_counter()
            await store.head("bench", key)
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await asyncio.to_thread(sync.head_object, Bucket="bench", Key=key)
            b.append(time.perf_counter() - t0)
        print(
            f"backend HEAD median: aiobotocore {statistics.median(a) * 1000:.2f} ms, "
            f"boto3-in-thread {statistics.median(b) * 1000:.2f} ms"
        )
        t0 = time.perf_counter()
        dl = await store.get("bench", key)
        async for _ in dl.body:
            pass
        ta = time.perf_counter() - t0

        def read_sync() -> None:
            body = sync.get_object(Bucket="bench", Key=key)["Body"]
            while body.read(1 << 20):
                pass

        t0 = time.perf_counter()
        await asyncio.to_thread(read_sync)
        tb = time.perf_counter() - t0
        print(f"backend GET: aiobotocore {ta:.2f} s, boto3-in-thread {tb:.2f} s")
    finally:
        await store.aclose()


if __name__ == "__main__":
    main()
