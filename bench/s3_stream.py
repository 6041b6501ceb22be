"""S3 streaming benchmark: a 1 GiB object read from moto directly vs through the daemon.

Starts moto's server and the daemon (``python -m storage_proxy.cli start-server``) as
subprocesses with an ``s3`` volume, stores one object of ``--size`` bytes in a vfolder (direct
multipart upload into the volume's key layout), then times, alternating, with the same aiohttp
client reading the body in chunks as they arrive:

- direct: ``GET`` of a presigned URL from moto;
- proxied: ``GET /download?token=…`` on the daemon's client API (token from the manager's
  ``POST /folder/file/download``).

Target: proxied ≥ 0.8 × direct throughput (medians, same run).  moto holds the object in RAM.

    python bench/s3_stream.py                 # 1 GiB, 3 runs
    python bench/s3_stream.py --size 256Mi --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from boto3.s3.transfer import TransferConfig

from storage_proxy.deltaview.testing import MotoServer, free_port
from storage_proxy.units import parse_size

AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
SECRET = "bench-manager-secret"
TARGET = 0.8
KEY_ID, KEY_SECRET = "AKIDBENCH", "bench-secret"


def write_config(tmp: Path, endpoint: str, client: int, manager: int) -> Path:
    cfg = tmp / "sp.toml"
    cfg.write_text(
        f"""
[storage-proxy]
data-dir = "{tmp}/data"
secret = "bench-token-secret-0123456789abcdef0123456789"
[api.client]
service-addr = {{ host = "127.0.0.1", port = {client} }}
[api.manager]
service-addr = {{ host = "127.0.0.1", port = {manager} }}
secret = "{SECRET}"
[logging]
level = "WARNING"
[volume.s3]
backend = "s3"
path = "{tmp}/s3"
[volume.s3.options]
endpoint = "{endpoint}"
bucket = "bench"
access-key = "{KEY_ID}"
secret-key = "{KEY_SECRET}"
disable-ssl = true
addressing-style = "path"
create-bucket = true
"""
    )
    return cfg


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited with {proc.returncode}")
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("daemon did not start")


async def timed_get(http: aiohttp.ClientSession, url: str, size: int) -> float:
    start = time.perf_counter()
    got = 0
    async with http.get(url) as r:
        r.raise_for_status()
        async for chunk in r.content.iter_any():
            got += len(chunk)
    elapsed = time.perf_counter() - start
    if got != size:
        raise SystemExit(f"read {got} bytes, expected {size}")
    return elapsed


async def run(args: argparse.Namespace, tmp: Path) -> None:
    size = parse_size(args.size)
    moto = MotoServer().start()
    client_port, manager_port = free_port(), free_port()
    cfg = write_config(tmp, moto.endpoint, client_port, manager_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
    daemon = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-m", "storage_proxy.cli", "start-server", "--config", str(cfg)], env=env
    )
    try:
        manager = f"http://127.0.0.1:{manager_port}"
        await wait_up(manager + "/status", daemon)
        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        headers = {AUTH_HEADER: SECRET}
        async with aiohttp.ClientSession(headers=headers) as m:
            r = await m.post(manager + "/folder/create", json={"volume": "s3", "vfid": vfid})
            r.raise_for_status()
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=KEY_SECRET,
        )
        scope, folder = vfid.split("/")
        h = folder
        key = f"{uuid.UUID(scope.split(':')[1]).hex}/{h[:2]}/{h[2:4]}/{h[4:]}/blob.bin"
        print(f"storing {size} bytes in moto ...", flush=True)
        src = tmp / "blob.bin"
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        s3.upload_file(str(src), "bench", key, Config=TransferConfig(multipart_chunksize=64 << 20))
        src.unlink()
        direct_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "bench", "Key": key}, ExpiresIn=3600
        )
        async with aiohttp.ClientSession(headers=headers) as m:
            r = await m.post(
                manager + "/folder/file/download",
                json={"volume": "s3", "vfid": vfid, "relpath": "blob.bin"},
            )
            token = (await r.json())["token"]
        proxied_url = f"http://127.0.0.1:{client_port}/download?token={token}"
        direct: list[float] = []
        proxied: list[float] = []
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await timed_get(http, direct_url, size)  # warm both paths once
            await timed_get(http, proxied_url, size)
            for i in range(args.runs):
                pair = [(direct, direct_url), (proxied, proxied_url)]
                for samples, url in pair if i % 2 == 0 else reversed(pair):
                    samples.append(await timed_get(http, url, size))
        d, p = statistics.median(direct), statistics.median(proxied)
        mbps = lambda t: size / t / 1e6  # noqa: E731
        ratio = d / p
        print(f"direct from moto : {mbps(d):8.1f} MB/s  (median of {args.runs}, {d:.2f}s)")
        print(f"through daemon   : {mbps(p):8.1f} MB/s  (median of {args.runs}, {p:.2f}s)")
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(f"ratio proxied/direct: {ratio:.2f}  (target >= {TARGET})  {verdict}")
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        moto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1Gi")
    parser.add_argument("--runs", type=int, default=3)
    args: Any = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sp-s3-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
