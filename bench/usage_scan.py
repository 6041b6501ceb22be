"""Usage-scan benchmark: ``GET /folder/usage`` against ``du -sb`` on the same tree.

Starts the daemon as a subprocess on a scratch directory, creates one vfolder through the manager
API, fills it with many small files, then times ``du -sb`` and the daemon's usage scan (HTTP round
trip included) in alternating runs. While each scan is in flight, ``/status`` is polled every few
milliseconds to check that the event loop stays responsive.

Targets (issue acceptance): median scan <= 1.5x median ``du -sb``; max ``/status`` latency during
scans <= 50 ms; the answer matches the tree (entries and bytes, directories counted as both
Backend.AI releases count them).

    python bench/usage_scan.py                      # 100,000 files in 1,000 directories
    python bench/usage_scan.py --files 5000 --dirs 50 --runs 3
    python bench/usage_scan.py --scan-workers 0 --json out.json --strict
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from daemon_proc import free_ports, stop_daemon

from storage_proxy.config import load_config
from storage_proxy.core.errors import ConfigError

SECRET = "bench-secret-123456"
AUTH = {"X-BackendAI-Storage-Auth-Token": SECRET}
VOLUME = "bench"
SUBDIRS_PER_TOP = 100
MAX_FILE_SIZE = 4096

TARGET_RATIO = 1.5
TARGET_STATUS_MS = 50.0

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
STATUS_INTERVAL = 0.005
IDLE_STATUS_SAMPLES = 100


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""


@dataclass
class Results:
    """Every figure the benchmark reports; also what ``--json`` writes."""

    files: int
    dirs: int
    runs: int
    scan_workers: int
    scan_workers_source: str
    cpu_count: int
    python: str
    scratch_fs: str
    load_avg_1m: float
    tree_bytes: int = 0
    #: The tree's directories below the vfolder root and their sizes: both Backend.AI releases
    #: count them in a vfolder's usage, and so does the daemon.
    tree_dirs: int = 0
    tree_dir_bytes: int = 0
    du_s: list[float] = field(default_factory=list)
    scan_s: list[float] = field(default_factory=list)
    du_reported_bytes: int = 0
    scan_answers: list[dict[str, int]] = field(default_factory=list)
    status_during_scan_ms: list[float] = field(default_factory=list)
    status_idle_ms: list[float] = field(default_factory=list)

    @property
    def du_median(self) -> float:
        return statistics.median(self.du_s)

    @property
    def scan_median(self) -> float:
        return statistics.median(self.scan_s)

    @property
    def ratio(self) -> float:
        return self.scan_median / self.du_median

    @property
    def answer_ok(self) -> bool:
        expected = {
            "file_count": self.files + self.tree_dirs,
            "used_bytes": self.tree_bytes + self.tree_dir_bytes,
        }
        return all(a == expected for a in self.scan_answers)

    def verdicts(self) -> dict[str, bool]:
        return {
            "ratio": self.ratio <= TARGET_RATIO,
            "status_latency": max(self.status_during_scan_ms) <= TARGET_STATUS_MS,
            "answer_matches_tree": self.answer_ok,
        }

    def summary(self) -> dict[str, Any]:
        during = self.status_during_scan_ms
        return {
            "du_median_s": self.du_median,
            "scan_median_s": self.scan_median,
            "ratio": self.ratio,
            "status_during_scan_max_ms": max(during),
            "status_during_scan_p99_ms": percentile(during, 99),
            "status_during_scan_p50_ms": percentile(during, 50),
            "status_during_scan_samples": len(during),
            "status_idle_p50_ms": percentile(self.status_idle_ms, 50),
            "targets": {"ratio_max": TARGET_RATIO, "status_latency_max_ms": TARGET_STATUS_MS},
            "verdicts": self.verdicts(),
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: always an observed value)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# -- setup -------------------------------------------------------------------------------------


def write_config(scratch: Path, ports: list[int], scan_workers: int | None) -> Path:
    """The daemon's TOML config: one ``vfs`` volume named ``bench`` inside the scratch dir."""
    client_port, manager_port, internal_port = ports
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = ["[storage-proxy]", f"data-dir = {q(str(scratch / 'data'))}"]
    if scan_workers is not None:
        lines.append(f"scan-workers = {scan_workers}")
    lines += [
        "",
        "[api.client]",
        f'service-addr = {{ host = "127.0.0.1", port = {client_port} }}',
        "",
        "[api.manager]",
        f'service-addr = {{ host = "127.0.0.1", port = {manager_port} }}',
        f'internal-addr = {{ host = "127.0.0.1", port = {internal_port} }}',
        f"secret = {q(SECRET)}",
        "",
        f"[volume.{VOLUME}]",
        'backend = "vfs"',
        f"path = {q(str(scratch / 'vol'))}",
        "",
    ]
    path = scratch / "storage-proxy.toml"
    path.write_text("\n".join(lines))
    return path


def daemon_env() -> dict[str, str]:
    """This environment minus ``STORAGE_PROXY_*``, so only the written config applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}


def start_daemon(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``storage-proxy start-server`` in its own session (Ctrl-C reaches only us)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "storage_proxy.cli", "start-server", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env=daemon_env(),
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no daemon log)"


def filesystem_type(path: Path) -> str:
    try:
        out = subprocess.run(
            ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def populate(root: Path, files: int, dirs: int, seed: int = 1) -> int:
    """Spread ``files`` files over ``dirs`` leaf dirs (100 per top dir); returns total bytes.

    Sizes are 1..4096 bytes from a seeded RNG, so every run builds the same tree.
    """
    rng = random.Random(seed)
    payload = b"x" * MAX_FILE_SIZE
    per_dir, extra = divmod(files, dirs)
    total = 0
    for d in range(dirs):
        leaf = root / f"top{d // SUBDIRS_PER_TOP:03d}" / f"sub{d % SUBDIRS_PER_TOP:03d}"
        leaf.mkdir(parents=True)
        for f in range(per_dir + (d < extra)):
            size = rng.randint(1, MAX_FILE_SIZE)
            fd = os.open(leaf / f"f{f:05d}.dat", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, payload[:size])
            finally:
                os.close(fd)
            total += size
    return total


def directories(root: Path) -> tuple[int, int]:
    """How many directories are below ``root`` and the sum of their sizes."""
    count = size = 0
    for top, dirs, _ in os.walk(root):
        for name in dirs:
            count += 1
            size += os.lstat(os.path.join(top, name)).st_size
    return count, size


# -- measurement -------------------------------------------------------------------------------


class Daemon:
    """The manager API of the running daemon, through one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}"

    async def wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the daemon exited with code {proc.returncode} during startup")
            try:
                async with self.session.get(f"{self.base}/status", timeout=PROBE_TIMEOUT) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
        raise BenchError(f"/status did not answer within {STARTUP_TIMEOUT:.0f}s")

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.base + path, headers=AUTH, **kwargs) as resp:
            if resp.status >= 400:
                raise BenchError(f"{method} {path}: HTTP {resp.status}: {await resp.text()}")
            return await resp.json() if resp.status != 204 else None

    async def status_latency(self) -> float:
        """One ``GET /status`` round trip, in milliseconds."""
        t0 = time.perf_counter()
        async with self.session.get(f"{self.base}/status") as resp:
            await resp.read()
            if resp.status != 200:
                raise BenchError(f"/status: HTTP {resp.status}")
        return (time.perf_counter() - t0) * 1000

    async def poll_status(self, stop: asyncio.Event) -> list[float]:
        """Poll ``/status`` every ~5 ms until ``stop`` is set; the latencies in milliseconds."""
        latencies = []
        while not stop.is_set():
            started = time.perf_counter()
            latencies.append(await self.status_latency())
            await asyncio.sleep(max(0.0, STATUS_INTERVAL - (time.perf_counter() - started)))
        return latencies

    async def timed_usage(self, vfid: str) -> tuple[float, dict[str, int], list[float]]:
        """Time one usage scan while polling ``/status``: (seconds, answer, /status ms)."""
        stop = asyncio.Event()
        poller = asyncio.create_task(self.poll_status(stop))
        try:
            t0 = time.perf_counter()
            answer = await self.call(
                "GET", "/folder/usage", params={"volume": VOLUME, "vfid": vfid}
            )
            elapsed = time.perf_counter() - t0
        finally:
            stop.set()
            latencies = await poller
        return elapsed, answer, latencies


async def timed_du(path: str) -> tuple[float, int]:
    """Wall time of ``du -sb path`` (process start included) and the bytes it reports."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "du", "-sb", path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"du -sb failed: {err.decode(errors='replace').strip()}")
    return elapsed, int(out.split()[0])


async def measure(proc: subprocess.Popen[bytes], manager_port: int, res: Results) -> None:
    """Create and fill the vfolder, warm the caches, then the timed runs (du and scan alternate)."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        daemon = Daemon(session, manager_port)
        await daemon.wait_ready(proc)

        vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        await daemon.call("POST", "/folder/create", json={"volume": VOLUME, "vfid": vfid})
        mount = await daemon.call("GET", "/folder/mount", params={"volume": VOLUME, "vfid": vfid})
        path = mount["path"]

        print(f"populating {res.files:,} files in {res.dirs:,} directories ...", flush=True)
        t0 = time.perf_counter()
        res.tree_bytes = await asyncio.to_thread(populate, Path(path), res.files, res.dirs)
        res.tree_dirs, res.tree_dir_bytes = await asyncio.to_thread(directories, Path(path))
        print(f"  done in {time.perf_counter() - t0:.1f}s; warming caches ...", flush=True)

        _, res.du_reported_bytes = await timed_du(path)
        await daemon.timed_usage(vfid)
        for _ in range(IDLE_STATUS_SAMPLES):
            res.status_idle_ms.append(await daemon.status_latency())

        for run in range(1, res.runs + 1):
            du_s, res.du_reported_bytes = await timed_du(path)
            scan_s, answer, latencies = await daemon.timed_usage(vfid)
            res.du_s.append(du_s)
            res.scan_s.append(scan_s)
            res.scan_answers.append(answer)
            res.status_during_scan_ms.extend(latencies)
            print(
                f"  run {run}/{res.runs}: du {du_s * 1000:8.1f} ms   scan {scan_s * 1000:8.1f} ms"
                f"   /status max {max(latencies):6.1f} ms ({len(latencies)} polls)",
                flush=True,
            )


# -- report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(res: Results) -> None:
    ms = [f"{v * 1000:8.1f}" for v in (res.du_median, min(res.du_s), max(res.du_s))]
    sc = [f"{v * 1000:8.1f}" for v in (res.scan_median, min(res.scan_s), max(res.scan_s))]
    during = res.status_during_scan_ms
    v = res.verdicts()
    got = res.scan_answers[-1]
    print()
    print(
        f"usage scan: {res.files:,} files in {res.dirs:,} directories "
        f"({res.tree_bytes:,} bytes), {res.runs} runs"
    )
    print(
        f"scan-workers = {res.scan_workers} ({res.scan_workers_source}); "
        f"cpus {res.cpu_count} (load {res.load_avg_1m:.2f} at start); "
        f"scratch fs {res.scratch_fs}; Python {res.python}"
    )
    print()
    print(f"{'':34}{'median':>9}{'min':>9}{'max':>9}")
    print(f"{'du -sb (ms)':34}{ms[0]:>9}{ms[1]:>9}{ms[2]:>9}")
    print(f"{'GET /folder/usage (ms)':34}{sc[0]:>9}{sc[1]:>9}{sc[2]:>9}")
    print()
    print(f"{'figure':34}{'value':>14}   {'target':<12}verdict")
    print(f"{'scan / du (medians)':34}{res.ratio:>13.3f}x   {'<= 1.5x':<12}{verdict(v['ratio'])}")
    print(
        f"{'/status max during scans':34}{max(during):>11.1f} ms   {'<= 50 ms':<12}"
        f"{verdict(v['status_latency'])}"
    )
    print(f"{'/status p99 during scans':34}{percentile(during, 99):>11.1f} ms")
    print(
        f"{'/status p50 during scans':34}{percentile(during, 50):>11.1f} ms   ({len(during)} polls)"
    )
    print(f"{'/status p50 idle':34}{percentile(res.status_idle_ms, 50):>11.1f} ms")
    print(f"{'answer matches tree':34}{'':>14}   {'exact':<12}{verdict(v['answer_matches_tree'])}")
    print(
        f"  file_count {got['file_count']:,} (expected {res.files:,} files + "
        f"{res.tree_dirs:,} directories); used_bytes {got['used_bytes']:,} (expected "
        f"{res.tree_bytes + res.tree_dir_bytes:,}; "
        f"du -sb {res.du_reported_bytes:,} incl. directories)"
    )


# -- entry point -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100_000, help="files to create (default 100000)")
    p.add_argument("--dirs", type=int, default=1_000, help="leaf directories (default 1000)")
    p.add_argument("--runs", type=int, default=5, help="timed repetitions (default 5)")
    p.add_argument(
        "--scan-workers",
        type=int,
        default=None,
        metavar="N",
        help="write scan-workers = N to the config (0: one thread; default: min(cpus, 4))",
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="parent of the scratch directory")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write figures here")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    if args.files < 1 or args.dirs < 1 or args.runs < 1:
        p.error("--files, --dirs and --runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sp-bench-", dir=args.tmpdir) as tmp:
        scratch = Path(tmp)
        ports = free_ports(3)  # client, manager, internal
        client_port, manager_port = ports[:2]
        config = write_config(scratch, ports, args.scan_workers)
        try:
            effective = load_config(config, environ={})["storage-proxy"]["scan-workers"]
        except ConfigError as e:
            print(f"benchmark failed: {e}")
            return 2
        res = Results(
            files=args.files,
            dirs=args.dirs,
            runs=args.runs,
            scan_workers=effective,
            scan_workers_source="--scan-workers"
            if args.scan_workers is not None
            else f"default min(cpus={os.cpu_count()}, 4)",
            cpu_count=os.cpu_count() or 1,
            python=platform.python_version(),
            scratch_fs=filesystem_type(scratch),
            load_avg_1m=os.getloadavg()[0],
        )
        print(f"scratch {scratch}; scan-workers = {effective}; starting the daemon ...", flush=True)
        log_path = scratch / "daemon.log"
        proc = start_daemon(config, log_path)
        try:
            asyncio.run(measure(proc, manager_port, res))
        except (BenchError, aiohttp.ClientError, TimeoutError) as e:
            print(f"benchmark failed: {e}\n--- daemon log (tail) ---\n{log_tail(log_path)}")
            return 2
        finally:
            stop_daemon(proc)
        print("cleaning up the scratch directory ...", flush=True)

    report(res)
    if args.json:
        args.json.write_text(json.dumps({**res.summary(), **asdict(res)}, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    missed = [name for name, ok in res.verdicts().items() if not ok]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
