"""Sustained mixed load on two nodes, with a rolling restart and a Redis outage in the middle.

Two daemons (nodes A and B, ``num-proc`` worker processes each) share one vfs volume, one SQLite
metadata store and one real redis-server.  N tenants, each with a vfolder under a quota, do what
users do for the whole run — small PUTs and overwrites, GETs and ranged GETs checked against what
they wrote, listings, moves, deletes, mkdirs, and resumable tus uploads in chunks — on whichever
node answers, failing over when one is away.  Meanwhile node A, then node B, is restarted
(SIGTERM, start again), and Redis is stopped for ten seconds and started again.

It ends by finishing every interrupted upload, and then checks what must hold: no answer was a
500, no upload session is left, no quota reservation is left, nothing is in ``.uploads`` that no
session owns, and every file of every tenant is exactly what the tenant last wrote (a write
whose answer was lost may have landed or not: either content is accepted, nothing else).

    python bench/soak.py [--seconds 90] [--tenants 64] [--workers 2] [--json PATH]

Prints ops/s, p50/p99 per operation, statuses, peak RSS of the daemons, and the verdicts;
exit 1 when an invariant is broken.  ``tests/hostile/test_soak.py`` runs it in CI, shorter.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_proc import free_ports, stop_daemon  # noqa: E402

from storage_proxy.services.hs256 import HS256  # noqa: E402

MiB = 1 << 20
TOKEN_SECRET = "soak-token-secret-0123456789abcdef"
MANAGER_SECRET = "soak-manager-secret"
AUTH = "X-BackendAI-Storage-Auth-Token"
QUOTA = 48 * MiB
TUS_CHUNK = 256 * 1024
ABSENT = "-"  # the oracle's name for "no file there"


# -- the servers --------------------------------------------------------------------------------
class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_ports(1)[0]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@dataclass
class Node:
    name: str
    config: Path
    manager_port: int
    client_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    up: bool = False

    def start(self, env: dict[str, str]) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the daemon's log, closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storage_proxy.cli", "start-server", "--config",
             str(self.config)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{self.manager_port}/status", timeout=1)
                self.up = True
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"node {self.name} did not start; see {self.log}")

    def stop(self) -> None:
        self.up = False
        if self.proc is not None:
            stop_daemon(self.proc)

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        out = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.proc.pid:
                    out.append(int(entry))
        return out


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def write_config(path: Path, name: str, ports: tuple[int, int, int], shared: Path,
                 redis_port: int, workers: int) -> None:  # fmt: skip
    manager, client, internal = ports
    path.write_text(
        f"""[storage-proxy]
node-id = "soak-{name}"
data-dir = "{shared / ("data-" + name)}"
secret = "{TOKEN_SECRET}"
num-proc = {workers}
scan-workers = 0
shutdown-timeout = "5s"
transfer-idle-timeout = "20s"

[api.manager]
secret = "{MANAGER_SECRET}"
service-addr = {{ host = "127.0.0.1", port = {manager} }}
internal-addr = {{ host = "127.0.0.1", port = {internal} }}

[api.client]
service-addr = {{ host = "127.0.0.1", port = {client} }}

[metadata]
path = "{shared / "meta.sqlite3"}"

[redis]
addr = {{ host = "127.0.0.1", port = {redis_port} }}

[volume.vol1]
backend = "vfs"
path = "{shared / "vol1"}"
options.quota-usage-ttl = 5.0

[logging]
level = "INFO"
"""
    )


# -- the tenants --------------------------------------------------------------------------------
@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    status: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    ops: int = 0

    def record(self, op: str, status: int, took: float) -> None:
        self.ops += 1
        self.latency[op].append(took)
        self.status[f"{op} {status}"] += 1
        if status >= 500 and status != 503:
            self.errors.append(f"{op}: {status}")


class Unavailable(Exception):
    """No node answered in time."""


@dataclass
class Tenant:
    index: int
    vfid: str
    token: str
    mount: Path
    oracle: dict[str, set[str]] = field(default_factory=dict)  # path → acceptable sha256s
    uploads: list[tuple[str, str, bytes]] = field(default_factory=list)  # (location, path, data)

    @property
    def files(self) -> str:
        scope, folder = self.vfid.rsplit("/", 1)
        return f"/api/v1/vfolders/vol1/{scope}/{folder}"

    def known(self) -> list[str]:
        return [p for p, shas in self.oracle.items() if ABSENT not in shas and len(shas) == 1]


class Load:
    def __init__(self, nodes: list[Node], stats: Stats, seconds: float, rng: random.Random):
        self.nodes = nodes
        self.stats = stats
        self.deadline = time.monotonic() + seconds
        self.rng = rng

    async def request(self, s: aiohttp.ClientSession, op: str, method: str, path: str,
                      *, client: bool = True, **kw: Any) -> tuple[int, bytes, Any]:  # fmt: skip
        """Send to an up node; (status, body, headers).  A 503 (a node stopping, Redis away)
        is retried, on any node, for up to 30 s."""
        give_up = time.monotonic() + 30
        while True:
            up = [n for n in self.nodes if n.up] or self.nodes
            node = self.rng.choice(up)
            port = node.client_port if client else node.manager_port
            started = time.monotonic()
            try:
                async with s.request(method, f"http://127.0.0.1:{port}{path}", **kw) as resp:
                    body = await resp.read()
                    self.stats.record(op, resp.status, time.monotonic() - started)
                    if resp.status == 503 and time.monotonic() < give_up:
                        await asyncio.sleep(0.2)
                        continue
                    return resp.status, body, resp.headers
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                # Not retried: the request may have been carried out (its effect is uncertain,
                # and the oracle keeps both outcomes until a later answer settles it).
                self.stats.status[f"{op} conn-error"] += 1
                raise

    async def tenant_loop(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        ops = [
            (self.put_small, 30), (self.get_file, 30), (self.get_range, 10), (self.listing, 8),
            (self.move, 5), (self.delete, 5), (self.mkdir, 4), (self.tus_upload, 8),
        ]  # fmt: skip
        funcs, weights = zip(*ops, strict=True)
        while time.monotonic() < self.deadline:
            op = self.rng.choices(funcs, weights)[0]
            try:
                await op(s, t)
            except (aiohttp.ClientError, TimeoutError, ConnectionError, Unavailable):
                await asyncio.sleep(0.1)  # the write may or may not have landed: see uncertain()

    def auth(self, t: Tenant) -> dict[str, str]:
        return {"Authorization": f"Bearer {t.token}"}

    # -- operations ---------------------------------------------------------------------------
    async def put_small(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        path = f"d{self.rng.randrange(4)}/f{self.rng.randrange(40)}.bin"
        data = os.urandom(self.rng.randrange(1, 64) * 1024)
        sha = hashlib.sha256(data).hexdigest()
        before = t.oracle.get(path, {ABSENT})
        t.oracle[path] = before | {sha}  # uncertain until answered
        status, _, _ = await self.request(
            s, "put", "PUT", f"{t.files}/files/{path}", data=data, headers=self.auth(t)
        )
        if status == 201:
            t.oracle[path] = {sha}
        elif status < 500:
            t.oracle[path] = before

    async def get_file(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        known = t.known()
        if not known:
            return
        path = self.rng.choice(known)
        status, body, _ = await self.request(
            s, "get", "GET", f"{t.files}/files/{path}", headers=self.auth(t)
        )
        if status == 200 and hashlib.sha256(body).hexdigest() not in t.oracle.get(path, set()):
            self.stats.errors.append(f"get {path}: content differs from what was written")

    async def get_range(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        known = t.known()
        if not known:
            return
        path = self.rng.choice(known)
        headers = {**self.auth(t), "Range": "bytes=100-199"}
        status, body, _ = await self.request(
            s, "range", "GET", f"{t.files}/files/{path}", headers=headers
        )
        if status not in (200, 206, 404, 416):
            self.stats.errors.append(f"range {path}: {status}")

    async def listing(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        await self.request(s, "list", "GET", f"{t.files}/files", headers=self.auth(t))

    async def move(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        known = t.known()
        if not known:
            return
        src = self.rng.choice(known)
        dst = f"d{self.rng.randrange(4)}/m{self.rng.randrange(1000)}.bin"
        if dst in t.oracle:
            return
        shas = t.oracle[src]
        t.oracle[src], t.oracle[dst] = shas | {ABSENT}, shas | {ABSENT}
        status, _, _ = await self.request(
            s, "move", "POST", f"{t.files}/move", json={"src": src, "dst": dst},
            headers=self.auth(t),
        )  # fmt: skip
        if status == 200:
            t.oracle[src], t.oracle[dst] = {ABSENT}, shas
        elif status < 500:
            t.oracle[src], t.oracle[dst] = shas, {ABSENT}

    async def delete(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        known = t.known()
        if not known:
            return
        path = self.rng.choice(known)
        shas = t.oracle[path]
        t.oracle[path] = shas | {ABSENT}
        status, _, _ = await self.request(
            s, "delete", "DELETE", f"{t.files}/files/{path}", headers=self.auth(t)
        )
        if status in (204, 404):
            t.oracle[path] = {ABSENT}
        elif status < 500:
            t.oracle[path] = shas

    async def mkdir(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        body = {"path": f"dirs/x{self.rng.randrange(50)}", "exist_ok": True}
        await self.request(s, "mkdir", "POST", f"{t.files}/mkdir", json=body, headers=self.auth(t))

    async def tus_upload(self, s: aiohttp.ClientSession, t: Tenant) -> None:
        path = f"up/u{self.rng.randrange(1000)}.bin"
        if path in t.oracle:
            return
        data = os.urandom(self.rng.randrange(1, 8) * TUS_CHUNK)
        meta = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}"
            for k, v in (("volume", "vol1"), ("vfid", t.vfid), ("path", path))
        )
        headers = {**self.auth(t), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
                   "Upload-Metadata": meta}  # fmt: skip
        status, _, resp_headers = await self.request(
            s, "tus-create", "POST", "/upload", headers=headers
        )
        if status != 201:
            return
        location = resp_headers["Location"]
        t.oracle[path] = {ABSENT, hashlib.sha256(data).hexdigest()}
        t.uploads.append((location, path, data))
        await self.finish_upload(s, t, location, path, data)

    async def finish_upload(
        self, s: aiohttp.ClientSession, t: Tenant, location: str, path: str, data: bytes
    ) -> bool:
        """Send what is missing, in chunks, asking the server for the offset after any error."""
        base = {**self.auth(t), "Tus-Resumable": "1.0.0"}
        for _ in range(200):
            status, _, headers = await self.request(s, "tus-head", "HEAD", location, headers=base)
            if status == 404:  # completed (its answer was lost): the oracle allows both outcomes
                t.uploads.remove((location, path, data))
                return False
            if status != 200:
                await asyncio.sleep(0.2)
                continue
            offset = int(headers["Upload-Offset"])
            chunk = data[offset : offset + TUS_CHUNK]
            patch = {**base, "Upload-Offset": str(offset),
                     "Content-Type": "application/offset+octet-stream"}  # fmt: skip
            try:
                status, _, _ = await self.request(
                    s, "tus-patch", "PATCH", location, data=chunk, headers=patch
                )
            except (aiohttp.ClientError, TimeoutError, ConnectionError, Unavailable):
                continue
            if status == 204 and offset + len(chunk) == len(data):
                t.oracle[path] = {hashlib.sha256(data).hexdigest()}
                t.uploads.remove((location, path, data))
                return True
            if status == 413:
                t.oracle[path] = {ABSENT}
                t.uploads.remove((location, path, data))
                return False
        return False


# -- the run ------------------------------------------------------------------------------------
async def faults(nodes: list[Node], redis: Redis, env: dict[str, str], seconds: float,
                 log: list[str]) -> None:  # fmt: skip
    """Rolling restart at 30 %, Redis away for 10 s at 60 % of the run."""
    start = time.monotonic()
    await asyncio.sleep(seconds * 0.3)
    for node in nodes:
        log.append(f"{time.monotonic() - start:5.1f}s restart {node.name}")
        await asyncio.to_thread(node.stop)
        await asyncio.to_thread(node.start, env)
    await asyncio.sleep(max(0.0, seconds * 0.6 - (time.monotonic() - start)))
    log.append(f"{time.monotonic() - start:5.1f}s redis away")
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(10)
    await asyncio.to_thread(redis.start)
    log.append(f"{time.monotonic() - start:5.1f}s redis back")


async def sample_rss(nodes: list[Node], peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib([p for n in nodes for p in n.pids()]))
        await asyncio.sleep(0.5)


def audit(tenants: list[Tenant], shared: Path) -> list[str]:
    problems = []
    for t in tenants:
        on_disk = {
            str(p.relative_to(t.mount)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in t.mount.rglob("*")
            if p.is_file()
        }
        for path, shas in t.oracle.items():
            found = on_disk.get(path, ABSENT)
            if found not in shas:
                problems.append(f"tenant {t.index} {path}: {found[:12]} not in {sorted(shas)}")
        for path in set(on_disk) - set(t.oracle):
            problems.append(f"tenant {t.index} {path}: a file nobody wrote")
    db = sqlite3.connect(shared / "meta.sqlite3")
    sessions = db.execute("SELECT count(*) FROM upload_sessions").fetchone()[0]
    held = db.execute(
        "SELECT COALESCE(SUM(bytes), 0) FROM quota_ledger WHERE kind = 'held'"
    ).fetchone()[0]
    db.close()
    if sessions:
        problems.append(f"{sessions} upload session(s) left")
    if held:
        problems.append(f"{held} bytes of quota reservation left")
    leftovers = sorted(os.listdir(shared / "vol1" / ".uploads"))
    if leftovers:
        problems.append(f".uploads holds what no session owns: {leftovers[:10]}")
    return problems


def traceback_excerpts(logs: str, limit: int = 3) -> list[str]:
    """The first lines of each traceback in the nodes' logs (with the line before it), so a
    failing run says what went wrong rather than only how often."""
    lines = logs.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback") and len(out) < limit:
            out.append("\n".join(lines[max(0, i - 1) : i + 40]))
    return out


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shared = Path(tempfile.mkdtemp(prefix="sp-soak-", dir=args.tmpdir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
    redis = Redis(shared)
    redis.start()
    nodes = []
    for name in ("a", "b"):
        ports = tuple(free_ports(3))
        config = shared / f"node-{name}.toml"
        write_config(config, name, ports, shared, redis.port, args.workers)  # type: ignore[arg-type]
        nodes.append(Node(name, config, ports[0], ports[1], shared / f"node-{name}.log"))
    try:
        for node in nodes:
            node.start(env)
        stats = Stats()
        rng = random.Random(args.seed)
        tenants = await setup_tenants(nodes[0], shared, args.tenants)
        load = Load(nodes, stats, args.seconds, rng)
        fault_log: list[str] = []
        peak = [0]
        stop = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=args.tenants)
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
            sampler = asyncio.ensure_future(sample_rss(nodes, peak, stop))
            await asyncio.gather(
                faults(nodes, redis, env, args.seconds, fault_log),
                *(load.tenant_loop(s, t) for t in tenants),
            )
            elapsed = time.monotonic() - started
            for t in tenants:  # every interrupted upload is resumed to the end
                for location, path, data in list(t.uploads):
                    await load.finish_upload(s, t, location, path, data)
            stop.set()
            await sampler
        unfinished = sum(len(t.uploads) for t in tenants)
        for node in nodes:
            node.stop()
        problems = audit(tenants, shared)
        if unfinished:
            problems.append(f"{unfinished} upload(s) could not be resumed to the end")
        server_errors = list(stats.errors)
        logs = "".join(n.log.read_text(errors="replace") for n in nodes)
        tracebacks = logs.count("Traceback")
        excerpts = traceback_excerpts(logs)
        return {
            "seconds": round(elapsed, 1),
            "tenants": args.tenants,
            "workers_per_node": args.workers,
            "ops": stats.ops,
            "ops_per_s": round(stats.ops / elapsed, 1),
            "per_op": {
                op: {
                    "n": len(v),
                    "p50_ms": round(statistics.median(v) * 1000, 1),
                    "p99_ms": round(percentile(v, 99) * 1000, 1),
                }
                for op, v in sorted(stats.latency.items())
            },
            "statuses": dict(sorted(stats.status.items())),
            "server_errors": server_errors[:20],
            "server_error_count": len(server_errors),
            "tracebacks_in_logs": tracebacks,
            "traceback_excerpts": excerpts,
            "peak_rss_mib": round(peak[0] / 1024, 1),
            "faults": fault_log,
            "audit_problems": problems[:50],
            "files_audited": sum(len(t.oracle) for t in tenants),
        }
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        if not args.keep:
            shutil.rmtree(shared, ignore_errors=True)


async def setup_tenants(node: Node, shared: Path, count: int) -> list[Tenant]:
    tenants = []
    async with aiohttp.ClientSession(headers={AUTH: MANAGER_SECRET}) as s:
        base = f"http://127.0.0.1:{node.manager_port}"
        for i in range(count):
            scope = f"user:{uuid.uuid4()}"
            vfid = f"{scope}/{uuid.uuid4().hex}"
            owner = f"tenant{i}"
            async with s.post(f"{base}/folder/create", json={"volume": "vol1", "vfid": vfid,
                                                             "owner": owner}) as r:  # fmt: skip
                assert r.status == 204, await r.text()
            body = {"volume": "vol1", "qsid": scope, "options": {"limit_bytes": QUOTA}}
            async with s.patch(f"{base}/quota-scope", json=body) as r:
                assert r.status == 204, await r.text()
            async with s.get(f"{base}/folder/mount", json={"volume": "vol1", "vfid": vfid}) as r:
                mount = Path((await r.json())["path"])
            token = HS256(TOKEN_SECRET).encode(
                {"sub": owner, "groups": [], "exp": int(time.time()) + 3600}
            )
            tenants.append(Tenant(i, vfid, token, mount))
    return tenants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--tenants", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = not result["audit_problems"] and not result["server_error_count"]
    ok = ok and not result["tracebacks_in_logs"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
