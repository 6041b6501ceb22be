"""Many small GETs: our daemon (``num-proc`` workers) against nginx serving the same files.

The issue-18 figure: 2,000 GETs of 4 KiB files by 32 concurrent aiohttp clients, page cache warm,
requests per second and server CPU per request, ours against nginx 1.22 (``sendfile on``, two
workers, no access log) started by this benchmark on the same directory. Rounds alternate which
server goes first (other work on a shared machine hits both alike); figures are medians.

Ours is measured on two doors: ``GET /download?token=…`` (the manager's session tokens, one per
file, fetched before timing) and ``GET /api/v1/…/files/<path>`` with one user token (the ACL
check on every request). Server CPU is utime+stime of every server process (master and workers)
read from ``/proc`` before and after the timed pass.

    python bench/small_files.py                      # 8 rounds, num-proc 2
    python bench/small_files.py --rounds 2 --files 500
    python bench/small_files.py --profile out.txt    # py-spy on one worker during a pass
    python bench/small_files.py --no-fast-lane       # aiohttp answers every request (A/B)
    python bench/small_files.py --event-loop asyncio # the daemon on asyncio (A/B)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from daemon_proc import free_ports
from transfers import VFID, BenchError, OurDaemon, source_revision

SMALL = 4096
CONCURRENCY = 32
TARGET_RPS = 0.5  # x nginx
TARGET_CPU = 5.0  # x nginx CPU per request
TICK = os.sysconf("SC_CLK_TCK")
USER = "bench-user"


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` and all their descendants, in seconds."""
    total = 0
    for pid in descendants(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / TICK


def is_worker(pid: int) -> bool:
    """A worker process of ``num-proc`` (multiprocessing's spawn), not its resource tracker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def descendants(pids: list[int]) -> list[int]:
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    found, frontier = set(pids), list(pids)
    while frontier:
        p = frontier.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found.add(child)
                frontier.append(child)
    return sorted(found)


class Nginx:
    """nginx on a free port, serving ``root`` with sendfile; its own scratch prefix."""

    def __init__(self, scratch: Path, root: Path) -> None:
        self.prefix = scratch / "nginx"
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = self.prefix / "nginx.conf"
        # as root, nginx's workers would drop to nobody/www-data and not read the scratch tree
        self.user = "user root root;" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"""daemon off;
worker_processes 2;
{self.user}
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
    }}
}}
"""
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[list[int]]:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = subprocess.Popen(
            [exe, "-p", str(self.prefix), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    import socket

                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    break
                time.sleep(0.05)
            else:
                raise BenchError("nginx did not start")
            yield [proc.pid]
        finally:
            proc.terminate()
            proc.wait(10)


async def fetch_all(urls: list[str], headers: dict[str, str]) -> float:
    """GET every URL with CONCURRENCY workers (a 4 KiB 200 each); seconds of the timed pass,
    after an identical untimed one."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_pass() -> None:
            pending = iter(urls)

            async def worker() -> None:
                for url in pending:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        if resp.status != 200 or len(body) != SMALL:
                            raise BenchError(f"{url[:60]}: {resp.status}, {len(body)} bytes")

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        await one_pass()
        t0 = time.perf_counter()
        await one_pass()
        return time.perf_counter() - t0


@dataclass
class Figure:
    rps: float
    cpu_per_1k: float  # server CPU seconds per 1,000 requests


def measure(pids: list[int], urls: list[str], headers: dict[str, str]) -> Figure:
    before = cpu_seconds(pids)
    t0 = time.perf_counter()
    seconds = asyncio.run(fetch_all(urls, headers))
    # the CPU read spans both passes: halve it (both passes do the same work)
    cpu = (cpu_seconds(pids) - before) / 2
    del t0
    return Figure(len(urls) / seconds, cpu / len(urls) * 1000)


class Ours(OurDaemon):
    def __init__(
        self, scratch: Path, num_proc: int, fast_lane: bool = True, loop: str = "uvloop"
    ) -> None:
        super().__init__(scratch, loop)
        lane = "true" if fast_lane else "false"
        settings = f"num-proc = {num_proc}\nfast-lane = {lane}\n"
        text = self.config.read_text().replace(
            "[storage-proxy]\n", f"[storage-proxy]\n{settings}", 1
        )
        self.config.write_text(text)

    def user_token(self) -> str:
        body = {"volume": self.volume, "vfid": VFID, "owner": USER, "kind": "user"}
        self.call("PUT", "/folder/acl", {**body, "entries": []})
        out = subprocess.run(
            [sys.executable, "-m", "storage_proxy.cli", "token", "issue", "--config"]
            + [str(self.config), "--user", USER],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().split()[-1]


def prepare_files(root: Path, count: int) -> list[str]:
    payload = random.Random(7).randbytes(SMALL)
    rels = [f"small/d{i // 500:03d}/f{i:05d}.bin" for i in range(count)]
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            path.write_bytes(payload)
    return rels


def profile(pid: int, out: Path, urls: list[str], headers: dict[str, str], seconds: int) -> None:
    """py-spy on one worker while passes run (the client in this process)."""
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o", str(out)]
        + ["--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asyncio.run(fetch_all(urls, headers))
    spy.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--profile", type=Path, default=None, help="py-spy raw output (one worker)")
    p.add_argument("--profile-door", choices=["download", "files-api"], default="download")
    p.add_argument(
        "--no-fast-lane", action="store_true", help="aiohttp answers every request (A/B)"
    )
    p.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--strict", action="store_true")
    args = p.parse_args(argv)
    load0, revision = os.getloadavg()[0], source_revision()
    with tempfile.TemporaryDirectory(prefix="sp-bench-small-") as tmp:
        scratch = Path(tmp)
        ours = Ours(scratch, args.num_proc, not args.no_fast_lane, args.event_loop)
        results: dict[str, list[Figure]] = {"nginx": [], "download": [], "files-api": []}
        with ours.running() as pids:
            root = ours.ensure_vfolder()
            rels = prepare_files(root, args.files)
            tokens = [ours.download_token(r) for r in rels]
            user = ours.user_token()
        nginx = Nginx(scratch, root)
        dl_urls = [f"{ours.client}/download?token={t}" for t in tokens]
        api = f"{ours.client}/api/v1/vfolders/{ours.volume}/{VFID}/files"
        api_urls = [f"{api}/{r}" for r in rels]
        api_headers = {"Authorization": f"Bearer {user}"}
        ng_urls = [f"{nginx.url}/{r}" for r in rels]
        print(f"{args.rounds} rounds, {len(rels)} x 4 KiB, {CONCURRENCY} clients", flush=True)
        for rnd in range(args.rounds):
            sides = ["nginx", "ours"] if rnd % 2 == 0 else ["ours", "nginx"]
            for side in sides:
                if side == "nginx":
                    with nginx.running() as npids:
                        fig = measure(npids, ng_urls, {})
                    results["nginx"].append(fig)
                    print(f"  round {rnd + 1} nginx     {fig.rps:8.0f} req/s "
                          f"{fig.cpu_per_1k:.3f} s/1k", flush=True)  # fmt: skip
                    continue
                with ours.running() as pids:
                    if args.profile is not None and rnd == 0:
                        workers = [q for q in descendants(pids) if is_worker(q)] or pids
                        if args.profile_door == "download":
                            profile(workers[0], args.profile, dl_urls, {}, 20)
                        else:
                            profile(workers[0], args.profile, api_urls, api_headers, 20)
                    for door, urls, headers in (
                        ("download", dl_urls, {}),
                        ("files-api", api_urls, api_headers),
                    ):
                        fig = measure(pids, urls, headers)
                        results[door].append(fig)
                        print(f"  round {rnd + 1} {door:<9} {fig.rps:8.0f} req/s "
                              f"{fig.cpu_per_1k:.3f} s/1k", flush=True)  # fmt: skip
    return report(args, results, revision, load0)


def report(
    args: argparse.Namespace, results: dict[str, list[Figure]], revision: str, load0: float
) -> int:
    def med(side: str, attr: str) -> float:
        return statistics.median(getattr(f, attr) for f in results[side])

    def spread(side: str, attr: str) -> str:
        values = [getattr(f, attr) for f in results[side]]
        digits = 0 if attr == "rps" else 3
        return f"{min(values):.{digits}f}..{max(values):.{digits}f}"

    lane = "off" if args.no_fast_lane else "on"
    print(f"\nsmall files: medians of {args.rounds} rounds; ours {revision}, num-proc "
          f"{args.num_proc}, fast lane {lane}, {args.event_loop}; load average {load0:.2f} -> "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    n_rps, n_cpu = med("nginx", "rps"), med("nginx", "cpu_per_1k")
    print(f"{'server':<28}{'req/s':>9}{'(range)':>14}{'CPU s/1k req':>14}{'(range)':>14}"
          f"{'req/s ratio':>13}{'CPU ratio':>11}")  # fmt: skip
    rows = {}
    for side, label in (
        ("nginx", "nginx 1.22, 2 workers"),
        ("download", "ours GET /download?token"),
        ("files-api", "ours GET /api/v1 (user)"),
    ):
        rps, cpu = med(side, "rps"), med(side, "cpu_per_1k")
        rows[side] = (rps / n_rps, cpu / n_cpu)
        cells = f"{rps:9.0f}{spread(side, 'rps'):>14}{cpu:14.3f}{spread(side, 'cpu_per_1k'):>14}"
        print(f"{label:<28}{cells}{rps / n_rps:12.2f}x{cpu / n_cpu:10.1f}x")
    rps_ratio, cpu_ratio = rows["download"]
    ok = rps_ratio >= TARGET_RPS and cpu_ratio <= TARGET_CPU
    print(f"\ntarget: >= {TARGET_RPS}x nginx req/s and <= {TARGET_CPU:.0f}x nginx CPU per request"
          f" (/download): {'PASS' if ok else 'FAIL'}")  # fmt: skip
    if args.json:
        doc = {k: [vars(f) for f in v] for k, v in results.items()}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
