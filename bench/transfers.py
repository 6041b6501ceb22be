"""Transfer benchmark: our daemon against Backend.AI's storage-proxy, same client calls, one run.

Four measurements, each taken on both daemons back to back. Every measurement gets a freshly
started daemon, the two daemons never run at the same time, and which one goes first alternates
from run to run (the machine may be busy with other work; pairing keeps the comparison fair):

1. download of a 1 GiB file, page cache warm, read from a plain socket in 1 MiB pieces (and with
   curl, shown but not judged: curl is the slower end); ``cat file > /dev/null`` as baseline;
2. tus upload of 256 MiB in 8 MiB chunks with tuspy; the sha256 of the stored file is checked;
3. 2,000 downloads of 4 KiB files by 32 concurrent clients (tokens fetched before timing);
4. peak RSS while a 4 GiB file streams out (GET /download) and another streams in (one raw tus
   PATCH from curl) at the same time: VmRSS sampled every 20 ms, VmHWM read at the end.

Each timed transfer in 1-3 follows an identical untimed one on the same daemon, so the figures
are steady-state throughput, not the cost of a fresh process's first request.

Targets: download >= 1.0x the reference and >= 0.5x cat; upload >= 1.3x the reference;
small-file requests/s >= 1.0x the reference; our peak RSS < 200 MiB. Figures are medians of runs.

    python bench/transfers.py                     # full size, 4 runs, reference included
    python bench/transfers.py --quick --runs 1    # a smoke run with small sizes
    python bench/transfers.py --no-peer --json out.json --strict
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import requests
from daemon_proc import free_ports, stop_daemon
from peer import (
    PEER_CLIENT,
    PEER_MANAGER,
    PEER_SECRET,
    PEER_VERSION,
    PEER_VOLUME,
    Peer,
    PeerError,
    default_peer_dir,
    default_shared_dir,
)
from rawget import GetError, socket_get
from tusclient.client import TusClient

AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
OUR_MANAGER_SECRET = "bench-manager-secret"
OUR_TOKEN_SECRET = "bench-token-secret-0123456789abcdef0123456789"
OUR_VOLUME = "vol1"
VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"

DOWNLOAD_REL = "bench-transfers/download.bin"
SMALL_DIR_REL = "bench-transfers/small"
RSS_OUT_REL = "bench-transfers/rss-out.bin"
UPLOAD_DIR_REL = "bench-transfers/up"
UPLOAD_REPEATS = 3  # timed uploads per daemon start; their median is the run's figure

SMALL_FILE_SIZE = 4096
UPLOAD_CHUNK = 8 << 20
CONCURRENCY = 32
RSS_INTERVAL = 0.02
FILL_BLOCK = 1 << 20
MB = 1e6

TARGET_DOWNLOAD_VS_REF = 1.0
TARGET_DOWNLOAD_VS_CAT = 0.5
TARGET_UPLOAD_VS_REF = 1.3
TARGET_SMALL_VS_REF = 1.0
TARGET_RSS_MIB = 200.0

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0  # the daemon gives in-flight requests 30 s on SIGTERM
HTTP_TIMEOUT = 60.0
TRANSFER_TIMEOUT = 900.0
DISK_MARGIN = 2 << 30


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""


@dataclass(frozen=True)
class Sizes:
    """How much each measurement moves."""

    download: int
    upload: int
    small_files: int
    rss: int


FULL = Sizes(download=1 << 30, upload=256 << 20, small_files=2000, rss=4 << 30)
QUICK = Sizes(download=64 << 20, upload=32 << 20, small_files=200, rss=256 << 20)


# -- the two daemons -----------------------------------------------------------------------------


class Side:
    """One daemon under test: its API addresses, how to run it, and the benchmark vfolder."""

    name: str
    client: str
    manager: str
    secret: str
    volume: str
    mount: Path  # the vfolder's directory, known after prepare()

    def running(self) -> contextlib.AbstractContextManager[list[int]]:
        """Run the daemon inside the block; yields the PIDs whose memory counts as its own."""
        raise NotImplementedError

    def log_tail(self) -> str:
        raise NotImplementedError

    def call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """One manager API call (JSON body, as Backend.AI's manager sends it, even on GET)."""
        resp = requests.request(
            method,
            self.manager + path,
            json=body,
            headers={AUTH_HEADER: self.secret},
            timeout=HTTP_TIMEOUT,
        )
        if resp.status_code >= 400:
            raise BenchError(f"{self.name}: {method} {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json() if resp.content else None

    def ensure_vfolder(self) -> Path:
        """Create the benchmark vfolder unless it exists (the reference answers 500 to a dup)."""
        body = {"volume": self.volume, "vfid": VFID}
        probe = requests.get(
            self.manager + "/folder/mount",
            json=body,
            headers={AUTH_HEADER: self.secret},
            timeout=HTTP_TIMEOUT,
        )
        if probe.status_code != 200:
            self.call("POST", "/folder/create", body)
        self.mount = Path(self.call("GET", "/folder/mount", body)["path"])
        return self.mount

    def download_token(self, relpath: str) -> str:
        body = {"volume": self.volume, "vfid": VFID, "relpath": relpath}
        return self.call("POST", "/folder/file/download", body)["token"]

    def upload_token(self, relpath: str, size: int) -> str:
        body = {"volume": self.volume, "vfid": VFID, "relpath": relpath, "size": size}
        return self.call("POST", "/folder/file/upload", body)["token"]


class OurDaemon(Side):
    """``storage_proxy.cli start-server`` on a scratch config, one process."""

    name = "ours"

    def __init__(self, scratch: Path, event_loop: str = "uvloop") -> None:
        self.scratch = scratch
        client_port, manager_port, internal_port = free_ports(3)
        self.client = f"http://127.0.0.1:{client_port}"
        self.manager = f"http://127.0.0.1:{manager_port}"
        self.secret = OUR_MANAGER_SECRET
        self.volume = OUR_VOLUME
        self.config = scratch / "storage-proxy.toml"
        self.log_path = scratch / "daemon.log"
        q = json.dumps  # a JSON string is a valid TOML basic string
        self.config.write_text(
            "\n".join(
                [
                    "[storage-proxy]",
                    f"event-loop = {q(event_loop)}",
                    f"data-dir = {q(str(scratch / 'data'))}",
                    f"secret = {q(OUR_TOKEN_SECRET)}",
                    "[api.client]",
                    f'service-addr = {{ host = "127.0.0.1", port = {client_port} }}',
                    "[api.manager]",
                    f'service-addr = {{ host = "127.0.0.1", port = {manager_port} }}',
                    f'internal-addr = {{ host = "127.0.0.1", port = {internal_port} }}',
                    f"secret = {q(OUR_MANAGER_SECRET)}",
                    f"[volume.{OUR_VOLUME}]",
                    'backend = "vfs"',
                    f"path = {q(str(scratch / OUR_VOLUME))}",
                    "[logging]",
                    'level = "WARNING"',
                    "",
                ]
            )
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[list[int]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "storage_proxy.cli", "start-server"]
                + ["--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.scratch,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only the benchmark
            )
        try:
            self._wait_ready(proc)
            yield [proc.pid]
        finally:
            stop_daemon(proc)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise BenchError(
                    f"our daemon exited with code {proc.returncode} at start-up:\n{tail}"
                )
            try:
                if all(
                    requests.get(url, timeout=2).status_code == 200
                    for url in (self.manager + "/status", self.client + "/status")
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise BenchError(f"our daemon did not answer /status within {STARTUP_TIMEOUT:.0f}s")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no daemon log)"


class ReferenceDaemon(Side):
    """Backend.AI's storage-proxy (master + workers, with etcd and redis) via bench/peer.py."""

    name = "reference"

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.client = PEER_CLIENT
        self.manager = PEER_MANAGER
        self.secret = PEER_SECRET
        self.volume = PEER_VOLUME

    def running(self) -> contextlib.AbstractContextManager[list[int]]:
        return self.peer.running()

    def log_tail(self) -> str:
        return self.peer.log_tail()


# -- test files ----------------------------------------------------------------------------------


def fill_file(path: Path, size: int, seed: int) -> None:
    """Write ``size`` bytes: one seeded random 1 MiB block, repeated (fast, incompressible)."""
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = random.Random(seed).randbytes(FILL_BLOCK)
    with open(path, "wb") as f:
        for offset in range(0, size, FILL_BLOCK):
            f.write(block[: size - offset])


def sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes with no blocks allocated (reads as zeros, instantly)."""
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def small_relpaths(count: int) -> list[str]:
    return [f"{SMALL_DIR_REL}/f{i:05d}.bin" for i in range(count)]


def prepare(side: Side, sizes: Sizes) -> None:
    """Create the vfolder and the files the downloads read (kept if already there)."""
    root = side.ensure_vfolder()
    fill_file(root / DOWNLOAD_REL, sizes.download, seed=1)
    sparse_file(root / RSS_OUT_REL, sizes.rss)
    payload = random.Random(2).randbytes(SMALL_FILE_SIZE)
    for rel in small_relpaths(sizes.small_files):
        path = root / rel
        if not (path.is_file() and path.stat().st_size == SMALL_FILE_SIZE):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
    shutil.rmtree(root / UPLOAD_DIR_REL, ignore_errors=True)  # left by an interrupted run


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_disk(needs: list[tuple[Path, int, int]]) -> None:
    """Refuse to start when a filesystem lacks room for what the runs write there.

    ``needs`` holds (path, bytes kept, bytes written and removed again); the daemons run one
    at a time, so on one filesystem the kept bytes add up and the transient ones do not.
    """
    per_device: dict[int, tuple[Path, int, int]] = {}
    for path, kept, transient in needs:
        path.mkdir(parents=True, exist_ok=True)
        first, k, t = per_device.get(path.stat().st_dev, (path, 0, 0))
        per_device[path.stat().st_dev] = (first, k + kept, max(t, transient))
    for path, kept, transient in per_device.values():
        need = kept + transient + DISK_MARGIN
        free = shutil.disk_usage(path).free
        if free < need:
            raise BenchError(
                f"{path}: {free / 2**30:.1f} GiB free, the benchmark needs about "
                f"{need / 2**30:.1f} GiB (use --quick or --tmpdir)"
            )


# -- measurements --------------------------------------------------------------------------------


@dataclass
class Context:
    """What every measurement needs besides the daemon: sizes and the client-side source files."""

    sizes: Sizes
    upload_src: Path
    upload_sha256: str
    rss_src: Path


def run_curl(args: list[str]) -> tuple[int, int, float]:
    """curl with ``-w '%{http_code} %{size} %{time_total}'``: (status, bytes, seconds)."""
    done = subprocess.run(
        ["curl", "-s", *args], capture_output=True, text=True, timeout=TRANSFER_TIMEOUT
    )
    if done.returncode != 0:
        raise BenchError(f"curl failed (exit {done.returncode}): {done.stderr.strip()}")
    code, size, seconds = done.stdout.split()
    return int(code), int(size), float(seconds)


def timed_cat(path: Path) -> float:
    """Seconds of ``cat path > /dev/null`` (process start included)."""
    t0 = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def curl_download(side: Side, relpath: str) -> tuple[int, int, float]:
    """GET /download of one file with curl: (status, bytes, seconds)."""
    url = f"{side.client}/download?token={side.download_token(relpath)}"
    return run_curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url])


def socket_download(side: Side, relpath: str) -> tuple[int, int, float]:
    """GET /download of one file over a plain socket (``rawget``): (status, bytes, seconds)."""
    url = f"{side.client}/download?token={side.download_token(relpath)}"
    try:
        return socket_get(url, TRANSFER_TIMEOUT)
    except GetError as e:
        raise BenchError(f"{side.name}: {e}") from None


def tus_upload(side: Side, src: Path, relpath: str) -> float:
    """Upload ``src`` with tuspy (HEAD for the offset, then PATCHes); seconds, token excluded."""
    token = side.upload_token(relpath, src.stat().st_size)
    t0 = time.perf_counter()
    uploader = TusClient(side.client + "/upload").uploader(
        str(src), url=f"{side.client}/upload?token={token}", chunk_size=UPLOAD_CHUNK, retries=0
    )
    uploader.upload()
    return time.perf_counter() - t0


def measure_download(side: Side, ctx: Context, run: int, pids: list[int]) -> dict[str, float]:
    """Throughput of one GET /download (socket client, and curl for reference), and of ``cat``
    on the same file just before."""
    path = side.mount / DOWNLOAD_REL
    timed_cat(path)  # make sure the page cache is warm
    cat_s = timed_cat(path)
    figures = {"cat_mbps": ctx.sizes.download / cat_s / MB}
    for key, client in (("download_mbps", socket_download), ("curl_mbps", curl_download)):
        client(side, DOWNLOAD_REL)  # untimed: the timed one sees a warmed-up daemon
        code, size, seconds = client(side, DOWNLOAD_REL)
        if code != 200 or size != ctx.sizes.download:
            raise BenchError(f"{side.name}: download answered {code} with {size} bytes")
        figures[key] = ctx.sizes.download / seconds / MB
    return figures


def measure_upload(side: Side, ctx: Context, run: int, pids: list[int]) -> dict[str, float]:
    """tuspy uploads in 8 MiB chunks after an identical untimed one: the median of
    UPLOAD_REPEATS timed ones on this daemon (one 256 MiB upload lasts a quarter of a second, so
    a single one is at the mercy of the machine); each stored file's sha256 is checked."""
    warmup = f"{UPLOAD_DIR_REL}/warmup-{run}.bin"
    tus_upload(side, ctx.upload_src, warmup)
    (side.mount / warmup).unlink()
    os.sync()
    samples = []
    for repeat in range(UPLOAD_REPEATS):
        rel = f"{UPLOAD_DIR_REL}/tus-{run}-{repeat}.bin"
        seconds = tus_upload(side, ctx.upload_src, rel)
        stored = side.mount / rel
        if not stored.is_file() or sha256_of(stored) != ctx.upload_sha256:
            raise BenchError(f"{side.name}: the stored upload {stored} does not match the source")
        stored.unlink()  # before writeback, so the next upload does not pay for it
        os.sync()
        samples.append(ctx.sizes.upload / seconds / MB)
    return {"upload_mbps": statistics.median(samples)}


async def _fetch_all(session: aiohttp.ClientSession, urls: list[str]) -> None:
    """GET every URL with CONCURRENCY workers; each answer must be 200 with a 4 KiB body."""
    pending = iter(urls)

    async def worker() -> None:
        for url in pending:
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or len(body) != SMALL_FILE_SIZE:
                    raise BenchError(f"small download answered {resp.status}, {len(body)} bytes")

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _small_downloads(side: Side, relpaths: list[str]) -> float:
    """Tokens first (untimed, also concurrent), an identical untimed pass, then the timed GETs."""
    headers = {AUTH_HEADER: side.secret}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def token(rel: str) -> str:
            body = {"volume": side.volume, "vfid": VFID, "relpath": rel}
            async with (
                gate,
                session.post(
                    side.manager + "/folder/file/download", json=body, headers=headers
                ) as resp,
            ):
                if resp.status != 200:
                    raise BenchError(f"{side.name}: download token: HTTP {resp.status}")
                return (await resp.json())["token"]

        tokens = await asyncio.gather(*(token(rel) for rel in relpaths))
        urls = [f"{side.client}/download?token={t}" for t in tokens]
        await _fetch_all(session, urls)
        t0 = time.perf_counter()
        await _fetch_all(session, urls)
        return time.perf_counter() - t0


def measure_small(side: Side, ctx: Context, run: int, pids: list[int]) -> dict[str, float]:
    """Requests per second for many 4 KiB downloads at CONCURRENCY clients."""
    relpaths = small_relpaths(ctx.sizes.small_files)
    seconds = asyncio.run(_small_downloads(side, relpaths))
    return {"small_rps": len(relpaths) / seconds}


def read_status_kib(pid: int, field: str) -> int:
    """One ``/proc/<pid>/status`` figure in KiB (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def measure_rss(side: Side, ctx: Context, run: int, pids: list[int]) -> dict[str, float]:
    """Peak memory while one file streams out and another streams in, concurrently.

    ``rss_mib`` is the sum of VmHWM over ``pids`` at the end (for our single process, its true
    peak); ``rss_sampled_mib`` the highest sum of VmRSS seen in the 20 ms samples.
    """
    size = ctx.sizes.rss
    rel_in = f"{UPLOAD_DIR_REL}/rss-in-{run}.bin"
    down_url = f"{side.client}/download?token={side.download_token(RSS_OUT_REL)}"
    up_url = f"{side.client}/upload?token={side.upload_token(rel_in, size)}"
    fmt = "%{http_code} %{size_download} %{size_upload}"
    curls = [
        ["-o", "/dev/null", "-w", fmt, down_url],
        ["-o", "/dev/null", "-w", fmt, "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0"]
        + ["-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream"]
        + ["-H", "Expect:", "-T", str(ctx.rss_src), up_url],
    ]
    procs = [subprocess.Popen(["curl", "-s", *a], stdout=subprocess.PIPE, text=True) for a in curls]
    peak_kib = samples = 0
    deadline = time.monotonic() + TRANSFER_TIMEOUT
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise BenchError(f"{side.name}: the 4 GiB transfers did not finish in time")
            peak_kib = max(peak_kib, sum(read_status_kib(pid, "VmRSS") for pid in pids))
            samples += 1
            time.sleep(RSS_INTERVAL)
        hwm_kib = sum(read_status_kib(pid, "VmHWM") for pid in pids)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        outputs = [p.communicate()[0] for p in procs]  # each curl's one -w line
    (down_code, down_size, _), (up_code, _, up_size) = (
        [int(x) for x in o.split()] for o in outputs
    )
    if down_code != 200 or down_size != size:
        raise BenchError(f"{side.name}: streaming download answered {down_code}, {down_size} B")
    stored = side.mount / rel_in
    if up_code != 204 or up_size != size or stored.stat().st_size != size:
        raise BenchError(f"{side.name}: streaming upload answered {up_code}, sent {up_size} B")
    stored.unlink()
    os.sync()  # settle what was written back already, away from the next measurement
    return {
        "rss_mib": max(hwm_kib, peak_kib) / 1024,
        "rss_sampled_mib": peak_kib / 1024,
        "rss_samples": samples,
    }


Measure = Callable[[Side, Context, int, list[int]], dict[str, float]]
MEASUREMENTS: dict[str, Measure] = {
    "download": measure_download,
    "upload": measure_upload,
    "small": measure_small,
    "rss": measure_rss,
}
UNITS = {
    "download_mbps": "MB/s",
    "cat_mbps": "MB/s",
    "curl_mbps": "MB/s",
    "upload_mbps": "MB/s",
    "small_rps": "req/s",
    "rss_mib": "MiB",
}


# -- orchestration -------------------------------------------------------------------------------


def run_all(sides: list[Side], ctx: Context, runs: int) -> dict[str, dict[str, list[float]]]:
    """Each measurement on each side back to back, a fresh daemon each time; raw figures."""
    figures: dict[str, dict[str, list[float]]] = {s.name: {} for s in sides}
    for run in range(1, runs + 1):
        order = sides if run % 2 else sides[::-1]
        for name, measure in MEASUREMENTS.items():
            for side in order:
                os.sync()  # the previous measurement's writeback must not land on this one
                with side.running() as pids:
                    got = measure(side, ctx, run, pids)
                for key, value in got.items():
                    figures[side.name].setdefault(key, []).append(value)
                shown = "  ".join(f"{k} {v:,.1f} {UNITS[k]}" for k, v in got.items() if k in UNITS)
                print(f"  run {run}/{runs}  {name:<8} {side.name:<9}  {shown}", flush=True)
    return figures


def median(figures: dict[str, list[float]], key: str) -> float | None:
    values = figures.get(key)
    return statistics.median(values) if values else None


@dataclass
class Row:
    """One line of the report; ``ok`` is None when it cannot be judged (no reference)."""

    metric: str
    ours: float | None = None
    reference: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    ratio_of: str = ""  # what the ratio divides by: "ref", "cat" (empty: no ratio)
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else "PASS" if self.ok else "FAIL"


def build_rows(figures: dict[str, dict[str, list[float]]], sizes: Sizes) -> list[Row]:
    """Medians, ratios and verdicts; ratios are ours / reference (or / cat) of the medians."""
    ours, ref = figures["ours"], figures.get("reference", {})

    def vs_ref(metric: str, key: str, target: float) -> Row:
        a, b = median(ours, key), median(ref, key)
        ratio = a / b if a is not None and b else None
        ok = None if ratio is None else ratio >= target
        return Row(metric, a, b, None, ratio, "ref", f">= {target:.1f}x ref", ok)

    download = vs_ref(
        f"download {human(sizes.download)} (MB/s)", "download_mbps", TARGET_DOWNLOAD_VS_REF
    )
    cats = ours.get("cat_mbps", []) + ref.get("cat_mbps", [])  # cat does not depend on the side
    download.baseline = cat = statistics.median(cats) if cats else None
    vs_cat = download.ours / cat if download.ours is not None and cat else None
    with_curl = vs_ref("  the same with curl (MB/s)", "curl_mbps", TARGET_DOWNLOAD_VS_REF)
    with_curl.target, with_curl.ok = "(client-bound)", None
    rss = median(ours, "rss_mib")
    return [
        download,
        Row(
            "download vs cat",
            ratio=vs_cat,
            ratio_of="cat",
            target=f">= {TARGET_DOWNLOAD_VS_CAT:.1f}x cat",
            ok=None if vs_cat is None else vs_cat >= TARGET_DOWNLOAD_VS_CAT,
        ),
        with_curl,
        vs_ref(
            f"tus upload {human(sizes.upload)}, 8 MiB chunks (MB/s)",
            "upload_mbps",
            TARGET_UPLOAD_VS_REF,
        ),
        vs_ref(
            f"{sizes.small_files:,} x 4 KiB downloads, {CONCURRENCY} clients (req/s)",
            "small_rps",
            TARGET_SMALL_VS_REF,
        ),
        Row(
            f"peak RSS, {human(sizes.rss)} out + in (MiB)",
            ours=rss,
            reference=median(ref, "rss_mib"),
            target=f"< {TARGET_RSS_MIB:.0f} MiB",
            ok=None if rss is None else rss < TARGET_RSS_MIB,
        ),
    ]


def human(nbytes: int) -> str:
    return f"{nbytes >> 30} GiB" if nbytes >= 1 << 30 else f"{nbytes >> 20} MiB"


def print_table(rows: list[Row]) -> None:
    """metric, ours, reference, baseline, ratio, target, verdict: one line per figure."""
    widths = (46, 10, 10, 10, 11, 14, 7)

    def line(cells: tuple[str, ...]) -> str:
        padded = [c.rjust(w) for c, w in zip(cells, widths, strict=True)]
        padded[0] = cells[0].ljust(widths[0])  # the metric name reads left-aligned
        return "  ".join(padded)

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    print(line(("metric", "ours", "reference", "baseline", "ratio", "target", "verdict")))
    for r in rows:
        ratio = (
            f"{r.ratio:.3f}x {r.ratio_of}" if r.ratio is not None else "n/a" if r.ratio_of else "-"
        )
        print(
            line(
                (
                    r.metric,
                    num(r.ours),
                    num(r.reference),
                    num(r.baseline),
                    ratio,
                    r.target,
                    r.verdict,
                )
            )
        )


def source_revision() -> str:
    """The daemon's code: ``git describe --always --dirty`` where it is imported from, else the
    directory itself (e.g. an export put first on PYTHONPATH)."""
    spec = importlib.util.find_spec("storage_proxy")
    if spec is None or spec.origin is None:
        return "unknown"
    where = Path(spec.origin).parent
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=where, capture_output=True, text=True
        )
    except OSError:
        return str(where)
    return done.stdout.strip() if done.returncode == 0 else str(where)


def print_spread(figures: dict[str, dict[str, list[float]]]) -> None:
    """Every run's figure, so the spread behind each median is visible."""
    for side, values in figures.items():
        for key, unit in UNITS.items():
            if key in values:
                runs = "  ".join(f"{v:9,.1f}" for v in values[key])
                print(f"{side:<10}{key:<15}{unit:<6}{runs}")


# -- entry point ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runs",
        type=int,
        default=4,
        help="paired runs; medians reported (4: even, so each side goes first equally often)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--no-peer", action="store_true", help="skip the reference (ratios n/a)")
    p.add_argument(
        "--shared",
        type=Path,
        default=default_shared_dir(),
        metavar="DIR",
        help="folder holding bench-peer/ (default: <repo>/../shared)",
    )
    p.add_argument(
        "--peer-dir",
        type=Path,
        default=default_peer_dir(),
        metavar="DIR",
        help="PEER_DIR for the reference (default: bench/.peer, kept between runs)",
    )
    p.add_argument(
        "--peer-num-proc", type=int, default=None, metavar="N", help="reference worker count"
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="parent of our scratch directory")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write figures here")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def make_context(scratch: Path, sizes: Sizes) -> Context:
    """The client-side source files: the upload payload (and its sha256), the sparse 4 GiB."""
    upload_src, rss_src = scratch / "upload.bin", scratch / "rss.bin"
    fill_file(upload_src, sizes.upload, seed=3)
    sparse_file(rss_src, sizes.rss)
    return Context(sizes, upload_src, sha256_of(upload_src), rss_src)


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, list[float]]] | None:
    """Set both daemons up, then all the runs; None (and why) if the benchmark cannot run."""
    sizes = QUICK if args.quick else FULL
    sides: list[Side] = [OurDaemon(scratch)]
    if not args.no_peer:
        peer = Peer(args.shared / "bench-peer", args.peer_dir, num_proc=args.peer_num_proc)
        sides.append(ReferenceDaemon(peer))
    kept = sizes.download + sizes.small_files * SMALL_FILE_SIZE  # files in each vfolder
    transient = sizes.rss + sizes.upload  # what an RSS or upload measurement stores, then removes
    needs = [(scratch, kept + sizes.upload, transient)]  # + the upload source
    if not args.no_peer:
        needs.append((args.peer_dir, kept, transient))
    try:
        check_disk(needs)
        if not args.no_peer:
            print(f"setting up the reference in {args.peer_dir} ...", flush=True)
            peer.setup()
        print("creating test files ...", flush=True)
        ctx = make_context(scratch, sizes)
        for side in sides:
            with side.running():
                prepare(side, sizes)
            print(f"  {side.name}: vfolder {side.mount}", flush=True)
        os.sync()  # no writeback of the test files during the runs
        print(f"measuring ({args.runs} runs) ...", flush=True)
        return run_all(sides, ctx, args.runs)
    except PeerError as e:  # carries the script's own output
        print(f"benchmark failed: {e}")
        return None
    except (BenchError, requests.RequestException, aiohttp.ClientError) as e:
        print(f"benchmark failed: {e}")
        for side in sides:
            print(f"--- {side.name} log (tail) ---\n{side.log_tail()}")
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    load_before, revision = os.getloadavg(), source_revision()
    with tempfile.TemporaryDirectory(prefix="sp-bench-transfers-", dir=args.tmpdir) as tmp:
        figures = measure(args, Path(tmp))
    if figures is None:
        return 2
    load_after = os.getloadavg()
    rows = build_rows(figures, sizes)
    if source_revision() != revision:
        print(f"\nWARNING: the daemon's source changed during the run ({revision} at the start)")
    reference = "skipped" if args.no_peer else PEER_VERSION
    print(f"\ntransfers: medians of {args.runs} runs; ours {revision}; reference {reference}")
    print(f"{os.cpu_count()} cpus; load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print("MB/s = 10^6 B/s; baseline = cat file > /dev/null; RSS = VmHWM, summed over the")
    print("reference's master and worker processes\n")
    print_spread(figures)
    print()
    print_table(rows)
    if args.json:
        doc = {
            "sizes": asdict(sizes),
            "runs": args.runs,
            "revision": revision,
            "reference": reference,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": [load_before, load_after],
            "figures": figures,
            "rows": [{**asdict(r), "verdict": r.verdict} for r in rows],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    missed = [r.metric for r in rows if r.ok is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
