"""S3 streaming benchmark on a real Ceph RGW: the daemon's s3 volume against direct S3 access.

Starts a throw-away single-node Ceph RGW (``tests/s3_server.py``, which runs
``../shared/infra/rgw-up.sh`` on free ports) and the daemon (``python -m storage_proxy.cli
start-server``) with an ``s3`` volume on a bucket of that RGW, then measures, alternating which
side goes first from run to run, each timed transfer after an identical untimed one:

- download: ``GET /download?token=…`` of a ``--size`` object stored in a vfolder, against a GET
  of a presigned URL straight from RGW, both read by the same client (a plain socket, 1 MiB
  reads; ``bench/rawget.py``).  Target: through the daemon ≥ 0.9 × direct.
- upload: a tus upload of a ``--size`` file (tuspy, 8 MiB PATCHes, upload token from the
  manager; the last PATCH returns once the object is in the bucket) against a direct multipart
  upload of the same file with boto3 (``upload_file``, its default transfer settings: 8 MiB parts,
  10 threads).  Target: through the daemon ≥ 0.8 × direct.

Figures are medians of ``--runs``; ratios are direct time ÷ daemon time of those medians, so both
sides see the same RGW, the same machine load and the same run.  Every stored object's size is
checked, and the first upload of each side is read back and compared by sha256 (untimed).

    python bench/s3_stream.py                      # 256 MiB, 4 runs
    python bench/s3_stream.py --size 64Mi --runs 2 # a quicker look
    python bench/s3_stream.py --strict             # exit 1 when a target is missed

Exit status: 0 (1 with ``--strict`` when a target is missed), 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from boto3.s3.transfer import TransferConfig
from daemon_proc import free_ports, stop_daemon
from rawget import GetError, socket_get
from tusclient.client import TusClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import RgwServer, S3Endpoint, new_bucket  # noqa: E402

from storage_proxy.core.units import parse_size  # noqa: E402

AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
MANAGER_SECRET = "bench-manager-secret"
TOKEN_SECRET = "bench-token-secret-0123456789abcdef0123456789"
VOLUME = "s3"
TUS_CHUNK = 8 << 20
TARGET_GET = 0.9
TARGET_UPLOAD = 0.8
MB = 1e6
HTTP_TIMEOUT = 60.0
STARTUP_TIMEOUT = 30.0


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""


def write_config(
    tmp: Path,
    ep: S3Endpoint,
    bucket: str,
    ports: list[int],
    relay_threads: int = 8,
    event_loop: str = "uvloop",
) -> Path:
    client, manager, internal = ports
    cfg = tmp / "sp.toml"
    cfg.write_text(
        f"""
[storage-proxy]
data-dir = "{tmp}/data"
secret = "{TOKEN_SECRET}"
relay-threads = {relay_threads}
event-loop = "{event_loop}"
[api.client]
service-addr = {{ host = "127.0.0.1", port = {client} }}
[api.manager]
service-addr = {{ host = "127.0.0.1", port = {manager} }}
secret = "{MANAGER_SECRET}"
internal-addr = {{ host = "127.0.0.1", port = {internal} }}
[logging]
level = "WARNING"
[volume.{VOLUME}]
backend = "s3"
path = "{tmp}/s3"
[volume.{VOLUME}.options]
endpoint = "{ep.url}"
region = "{ep.region}"
bucket = "{bucket}"
access-key = "{ep.access_key}"
secret-key = "{ep.secret_key}"
disable-ssl = true
addressing-style = "path"
"""
    )
    return cfg


class Daemon:
    """The daemon as a subprocess, and the manager calls the benchmark makes."""

    def __init__(
        self,
        tmp: Path,
        ep: S3Endpoint,
        bucket: str,
        relay_threads: int = 8,
        event_loop: str = "uvloop",
    ) -> None:
        ports = free_ports(3)
        self.client = f"http://127.0.0.1:{ports[0]}"
        self.manager = f"http://127.0.0.1:{ports[1]}"
        self.config = write_config(tmp, ep, bucket, ports, relay_threads, event_loop)
        self.proc: subprocess.Popen[bytes] | None = None
        self.vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
        cmd = [sys.executable, "-m", "storage_proxy.cli", "start-server", "--config"]
        self.proc = subprocess.Popen([*cmd, str(self.config)], env=env, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited with {self.proc.returncode} at start-up")
            try:
                if requests.get(self.manager + "/status", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise BenchError(f"the daemon did not answer within {STARTUP_TIMEOUT:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)

    def call(self, path: str, **body: Any) -> Any:
        body = {"volume": VOLUME, "vfid": self.vfid, **body}
        resp = requests.post(
            self.manager + path, json=body, headers={AUTH_HEADER: MANAGER_SECRET}, timeout=60
        )
        if resp.status_code >= 400:
            raise BenchError(f"POST {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json() if resp.content else None

    def object_key(self, relpath: str) -> str:
        """Where the s3 volume keeps ``relpath`` of the benchmark vfolder (no key prefix)."""
        scope, folder = self.vfid.split("/")
        scope_hex = uuid.UUID(scope.split(":", 1)[1]).hex
        return f"{scope_hex}/{folder[:2]}/{folder[2:4]}/{folder[4:]}/{relpath}"


def make_source(path: Path, size: int) -> str:
    """A file of ``size`` random-looking bytes; returns its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(0, size, len(block)):
            chunk = (i.to_bytes(8, "big") + block)[: min(len(block), size - i)]
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def stored_sha256(s3: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(8 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def alternate(
    runs: int, first: tuple[str, Callable[[int], float]], second: tuple[str, Callable[[int], float]]
) -> dict[str, list[float]]:
    """Each side once untimed, then ``runs`` timed rounds, the order swapped every round."""
    samples: dict[str, list[float]] = {first[0]: [], second[0]: []}
    for _, fn in (first, second):
        fn(-1)
    for i in range(runs):
        for name, fn in (first, second) if i % 2 == 0 else (second, first):
            samples[name].append(fn(i))
    return samples


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else "FAIL"


def report(
    title: str, size: int, samples: dict[str, list[float]], anchor: str, ours: str, target: float
) -> float:
    print(f"-- {title}")
    for name in (anchor, ours):
        runs = ", ".join(f"{size / s / MB:.0f}" for s in samples[name])
        med = statistics.median(samples[name])
        print(f"  {name:<28} {size / med / MB:8.1f} MB/s  median {med:.3f}s   runs: {runs} MB/s")
    ratio = statistics.median(samples[anchor]) / statistics.median(samples[ours])
    print(f"  ratio daemon/direct: {ratio:.2f}  (target >= {target})  {verdict(ratio, target)}")
    return ratio


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    size = parse_size(args.size)
    rgw = RgwServer()
    print("starting Ceph RGW ...", flush=True)
    t0 = time.perf_counter()
    ep = rgw.start()
    print(f"RGW up in {time.perf_counter() - t0:.1f}s at {ep.url}", flush=True)
    daemon: Daemon | None = None
    try:
        bucket = new_bucket(ep, "bench")
        s3 = ep.client()
        daemon = Daemon(tmp, ep, bucket, 0 if args.no_relay else 8, args.event_loop)
        daemon.start()
        daemon.call("/folder/create")
        src = tmp / "source.bin"
        source_sha = make_source(src, size)

        # -- download ---------------------------------------------------------------------
        key = daemon.object_key("download.bin")
        s3.upload_file(str(src), bucket, key)
        direct_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
        )
        token = daemon.call("/folder/file/download", relpath="download.bin")["token"]
        proxied_url = f"{daemon.client}/download?token={token}"

        def getter(url: str) -> Callable[[int], float]:
            def get(_: int) -> float:
                status, got, seconds = socket_get(url)
                if status != 200 or got != size:
                    raise BenchError(f"GET answered {status} with {got} of {size} bytes")
                return seconds

            return get

        gets = alternate(
            args.runs,
            ("direct GET from RGW", getter(direct_url)),
            ("GET /download (daemon)", getter(proxied_url)),
        )
        s3.delete_object(Bucket=bucket, Key=key)
        rgw_gc(rgw)

        # -- upload -----------------------------------------------------------------------
        checked: set[str] = set()

        def check(side: str, key: str) -> None:
            stored = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
            if stored != size:
                raise BenchError(f"{side}: stored {stored} bytes, expected {size}")
            if side not in checked:  # once per side: the bytes themselves
                if stored_sha256(s3, bucket, key) != source_sha:
                    raise BenchError(f"{side}: the stored object differs from the source")
                checked.add(side)
            s3.delete_object(Bucket=bucket, Key=key)
            rgw_gc(rgw)

        def direct_upload(i: int) -> float:
            key = f"direct/{i + 1}.bin"
            start = time.perf_counter()
            s3.upload_file(str(src), bucket, key, Config=TransferConfig())
            seconds = time.perf_counter() - start
            check("direct", key)
            return seconds

        def tus_upload(i: int) -> float:
            assert daemon is not None
            rel = f"up/{i + 1}.bin"
            token = daemon.call("/folder/file/upload", relpath=rel, size=size)["token"]
            start = time.perf_counter()
            url = f"{daemon.client}/upload?token={token}"
            TusClient(daemon.client + "/upload").uploader(
                str(src), url=url, chunk_size=TUS_CHUNK, retries=0
            ).upload()
            seconds = time.perf_counter() - start
            check("tus", daemon.object_key(rel))
            return seconds

        ups = alternate(
            args.runs,
            ("direct boto3 multipart", direct_upload),
            ("tus upload (daemon)", tus_upload),
        )

        mib = size / (1 << 20)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nS3 streaming, {mib:.0f} MiB, Ceph RGW on 127.0.0.1, {args.runs} runs")
        print(f"(load average at the end: {load}; {os.cpu_count()} CPUs)")
        get_ratio = report(
            "download",
            size,
            gets,
            "direct GET from RGW",
            "GET /download (daemon)",
            TARGET_GET,
        )
        up_ratio = report(
            "upload",
            size,
            ups,
            "direct boto3 multipart",
            "tus upload (daemon)",
            TARGET_UPLOAD,
        )
        return {
            "size": size,
            "runs": args.runs,
            "download": {"samples": gets, "ratio": get_ratio, "target": TARGET_GET},
            "upload": {"samples": ups, "ratio": up_ratio, "target": TARGET_UPLOAD},
            "passed": get_ratio >= TARGET_GET and up_ratio >= TARGET_UPLOAD,
        }
    finally:
        if daemon is not None:
            daemon.stop()
        rgw.stop()


def rgw_gc(rgw: RgwServer) -> None:
    """Let RGW reclaim deleted objects now (its memstore OSD keeps them in RAM until then)."""
    if rgw.rgw_dir is None:
        return
    env = {**os.environ, "CEPH_CONF": str(rgw.rgw_dir / "ceph.conf")}
    subprocess.run(
        ["radosgw-admin", "gc", "process", "--include-all"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="256Mi", help="object and upload size (256Mi)")
    parser.add_argument("--runs", type=int, default=4, help="timed rounds (4)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help="relay-threads = 0: downloads streamed through the event loop, not spliced",
    )
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="sp-s3-bench-") as tmp:
            result = run(args, Path(tmp))
    except (BenchError, GetError, RuntimeError) as e:
        print(f"s3_stream: cannot run: {e}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.strict and not result["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
