"""Large transfers against what an operator would otherwise run: nginx and the Node tus server.

The issue-18 figure "large transfers keep today's ratios", with both anchors started here:

- download: a 1 GiB file (page cache warm) through ``GET /download?token=…`` of our daemon,
  against nginx 1.22 serving the same file from the vfolder's directory (``sendfile on``, two
  workers, no access log); both read by the same plain-socket client (``rawget``, 1 MiB
  reads), each timed GET after an identical untimed one; ``cat file > /dev/null`` shown as the
  disk-side ceiling.  Target: ours >= 1.0x nginx.
- upload: a 256 MiB file by tuspy in 8 MiB PATCHes into our daemon (an upload token from the
  manager API; the last PATCH returns once the file is published) against the official Node
  tus server (``@tus/server`` 2.4.5 with ``@tus/file-store`` 2.1.1, ``bench/tus_node``,
  installed by npm into ``~/.cache/storage-proxy-bench`` on first use).  Every stored file is
  checked by sha256, removed and synced before the next.  Target: ours >= 1.5x ``@tus/server``.

Runs alternate which server goes first; figures are medians of ``--runs``.

    python bench/large_transfers.py                  # 1 GiB down, 256 MiB up, 4 runs
    python bench/large_transfers.py --quick --runs 2 # 128 MiB / 64 MiB
    python bench/large_transfers.py --strict         # exit 1 when a target is missed
    python bench/large_transfers.py --event-loop asyncio

Exit status: 0 (1 with ``--strict`` when a target is missed), 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from daemon_proc import free_ports
from rawget import GetError, socket_get
from small_files import Nginx
from transfers import (
    UPLOAD_CHUNK,
    BenchError,
    OurDaemon,
    fill_file,
    sha256_of,
    source_revision,
    timed_cat,
)
from tusclient.client import TusClient

MB = 1e6
TARGET_DOWNLOAD = 1.0  # x nginx
TARGET_UPLOAD = 1.5  # x @tus/server
DOWNLOAD_REL = "large/download.bin"
TUS_NODE_DIR = Path(__file__).resolve().parent / "tus_node"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "storage-proxy-bench"


def tus_node_install() -> Path:
    """The Node tus server's directory, its pinned packages installed (once)."""
    target = CACHE / "tus-node"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "server.mjs"):
        shutil.copyfile(TUS_NODE_DIR / name, target / name)
    marker = target / "node_modules" / "@tus" / "file-store" / "package.json"
    if not marker.is_file():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise BenchError("the @tus/server anchor needs node (>= 20.19) and npm")
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise BenchError(f"npm install of @tus/server failed: {done.stderr.strip()[-500:]}")
    return target


class TusNode:
    """``node server.mjs`` on a free port, storing uploads in ``store``."""

    def __init__(self, home: Path, store: Path) -> None:
        self.home, self.store = home, store
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}/files/"

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.store.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            ["node", "server.mjs", str(self.port), str(self.store)],
            cwd=self.home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port(self.port, "the Node tus server")
            yield
        finally:
            proc.terminate()
            proc.wait(10)


def wait_port(port: int, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not start")


def get(url: str, size: int, what: str) -> float:
    """MB/s of one timed GET after an identical untimed one."""
    for _ in range(2):
        try:
            status, nbytes, seconds = socket_get(url)
        except GetError as e:
            raise BenchError(f"{what}: {e}") from None
        if status != 200 or nbytes != size:
            raise BenchError(f"{what}: answered {status} with {nbytes} bytes of {size}")
    return size / seconds / MB


def tus_put(endpoint: str, src: Path, url: str | None = None) -> tuple[float, str]:
    """(seconds, upload URL) of one tuspy upload in 8 MiB chunks; ``url``: an upload already
    created (ours: the manager's upload token), else one is created at ``endpoint``."""
    t0 = time.perf_counter()
    uploader = TusClient(endpoint).uploader(
        str(src),
        url=url,
        chunk_size=UPLOAD_CHUNK,
        retries=0,
        metadata={"filename": src.name},
    )
    uploader.upload()
    return time.perf_counter() - t0, str(uploader.url)


def checked(stored: Path, want: str, what: str) -> None:
    if not stored.is_file() or sha256_of(stored) != want:
        raise BenchError(f"{what}: the stored upload {stored.name} does not match the source")
    stored.unlink()
    os.sync()  # the next upload does not pay for this one's writeback


def alternate(run: int, sides: list[tuple[str, Callable[[], float]]]) -> dict[str, float]:
    order = sides if run % 2 == 0 else sides[::-1]
    return {name: measure() for name, measure in order}


def ours_get(ours: OurDaemon, size: int) -> float:
    return get(f"{ours.client}/download?token={ours.download_token(DOWNLOAD_REL)}", size, "ours")


def ours_put(ours: OurDaemon, src: Path, want: str, tag: str) -> float:
    size = src.stat().st_size
    for timed in (False, True):  # each token is fetched before its upload's clock starts
        rel = f"large/up-{tag}-{int(timed)}.bin"
        url = f"{ours.client}/upload?token={ours.upload_token(rel, size)}"
        seconds, _ = tus_put(ours.client + "/upload", src, url)
        checked(ours.mount / rel, want, "ours")
    return size / seconds / MB


def node_put(tus: TusNode, src: Path, want: str) -> float:
    for _ in range(2):  # an untimed upload, then the timed one
        seconds, url = tus_put(tus.url, src)
        checked(tus.store / url.rsplit("/", 1)[1], want, "@tus/server")
    return src.stat().st_size / seconds / MB


def run(args: argparse.Namespace, scratch: Path) -> bool:
    down, up = args.download_size, args.upload_size
    tus_home = tus_node_install()
    (scratch / "ours").mkdir()
    ours = OurDaemon(scratch / "ours", args.event_loop)
    src = scratch / "upload-source.bin"
    fill_file(src, up, seed=11)
    want = sha256_of(src)
    figures: dict[str, list[float]] = {}
    with ours.running():
        mount = ours.ensure_vfolder()
        fill_file(mount / DOWNLOAD_REL, down, seed=7)
        nginx = Nginx(scratch, mount)
        tus = TusNode(tus_home, scratch / "tus-store")
        nginx_url = f"{nginx.url}/{DOWNLOAD_REL}"
        with nginx.running(), tus.running():
            for i in range(args.runs):
                timed_cat(mount / DOWNLOAD_REL)  # warm
                figures.setdefault("cat", []).append(down / timed_cat(mount / DOWNLOAD_REL) / MB)
                got = alternate(
                    i,
                    [
                        ("ours_down", partial(ours_get, ours, down)),
                        ("nginx_down", partial(get, nginx_url, down, "nginx")),
                    ],
                )
                got |= alternate(
                    i,
                    [
                        ("ours_up", partial(ours_put, ours, src, want, str(i))),
                        ("node_up", partial(node_put, tus, src, want)),
                    ],
                )
                for key, value in got.items():
                    figures.setdefault(key, []).append(value)
                print(
                    f"  run {i + 1}: download ours {got['ours_down']:.0f} MB/s, "
                    f"nginx {got['nginx_down']:.0f}; upload ours {got['ours_up']:.0f} MB/s, "
                    f"@tus/server {got['node_up']:.0f}",
                    flush=True,
                )
    return report(figures, args)


def report(figures: dict[str, list[float]], args: argparse.Namespace) -> bool:
    med = {k: statistics.median(v) for k, v in figures.items()}
    down_ratio = med["ours_down"] / med["nginx_down"]
    up_ratio = med["ours_up"] / med["node_up"]
    print(
        f"\nlarge transfers: medians of {args.runs} runs; ours {source_revision()}, num-proc 1, "
        f"{args.event_loop}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = [
        (f"download {args.download_size >> 20} MiB, ours", med["ours_down"], ""),
        ("nginx (sendfile)", med["nginx_down"], f"ours {down_ratio:.2f}x (>= {TARGET_DOWNLOAD})"),
        ("cat > /dev/null", med["cat"], f"ours {med['ours_down'] / med['cat']:.2f}x"),
        (f"tus upload {args.upload_size >> 20} MiB, ours", med["ours_up"], ""),
        ("@tus/server (file store)", med["node_up"], f"ours {up_ratio:.2f}x (>= {TARGET_UPLOAD})"),
    ]
    for name, mbps, note in rows:
        print(f"  {name:<30} {mbps:8.0f} MB/s   {note}")
    ok = down_ratio >= TARGET_DOWNLOAD and up_ratio >= TARGET_UPLOAD
    print("targets:", "PASS" if ok else "FAIL")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="128 MiB down, 64 MiB up")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    args.download_size = (128 if args.quick else 1024) << 20
    args.upload_size = (64 if args.quick else 256) << 20
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("large_transfers: nginx is not installed (apt-get install nginx-light)")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="sp-large-") as tmp:
            ok = run(args, Path(tmp))
    except BenchError as e:
        print(f"large_transfers: cannot run: {e}", file=sys.stderr)
        return 2
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
