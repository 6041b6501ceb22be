"""Many small files down as one zip, and a directory synced up with ``storage-proxy-client sync``.

The issue-18 figures:

(a) a multi-file zip download of 10,000 files of 4 KiB (20 directories of 500, named in one
    ``archive-download-token``) through ``GET /download-archive``, read to the end by one aiohttp
    client, against ``zip -0 -r -q - <the same directories>`` piped to /dev/null in the same run
    (target: ours >= 0.5x zip's files/s). Rounds alternate which goes first; medians. Each
    archive is checked: it lists every file once with its size.
(b) ``storage-proxy-client sync`` of a 2,000-file tree of 4 KiB files into a fresh prefix (the
    first sync) and again with nothing changed (the re-sync: a listing, local sha256s and one
    metadata read per file), each as a command a person runs (its start-up included), against
    one ``PUT`` per file of the same tree from 32 aiohttp clients (no comparison, no checks) in
    the same run. Printed, with no target.

    python bench/many_files.py                      # 10,000 / 2,000 files, 3 rounds, num-proc 2
    python bench/many_files.py --zip-files 2000 --sync-files 500 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import aiohttp
from batch_upload import put_each
from small_files import Ours
from transfers import VFID, BenchError, source_revision

SMALL = 4096
PER_DIR = 500
TARGET = 0.5  # zip download files/s / `zip -0 -r` files/s


def make_tree(root: Path, count: int, seed: int) -> list[str]:
    """``count`` files of 4 KiB below ``root`` in directories of 500; their relative paths."""
    rng = random.Random(seed)
    rels = [f"d{i // PER_DIR:03d}/f{i:05d}.bin" for i in range(count)]
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(SMALL))
    return rels


async def zip_download(ours: Ours, dirs: list[str], count: int) -> float:
    token = ours.call(
        "POST",
        "/folder/file/archive-download-token",
        {"volume": ours.volume, "virtual_folder_id": VFID, "files": dirs},
    )["token"]
    timeout = aiohttp.ClientTimeout(total=3600)
    body = io.BytesIO()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        async with session.get(f"{ours.client}/download-archive", params={"token": token}) as resp:
            if resp.status != 200:
                raise BenchError(f"download-archive: {resp.status} {await resp.text()}")
            async for chunk in resp.content.iter_chunked(1 << 20):
                body.write(chunk)
        seconds = time.perf_counter() - t0
    with zipfile.ZipFile(body) as archive:
        files = [i for i in archive.infolist() if not i.is_dir()]
    if len(files) != count or any(i.file_size != SMALL for i in files):
        raise BenchError(f"the archive holds {len(files)} files, not {count} of {SMALL} bytes")
    return seconds


def zip_anchor(root: Path, dirs: list[str]) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["zip", "-0", "-r", "-q", "-", *dirs], cwd=root, stdout=null, check=True)
    return time.perf_counter() - t0


def run_sync(ours: Ours, token: str, src: Path, remote: str, scratch: Path) -> tuple[float, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")},
        "STORAGE_PROXY_URL": ours.client,
        "STORAGE_PROXY_TOKEN": token,
        "XDG_STATE_HOME": str(scratch / "client-state"),
    }
    cmd = [sys.executable, "-m", "storage_proxy.client.cli", "-q", "sync", str(src), remote]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"sync exited {done.returncode}: {done.stdout}{done.stderr}")
    return seconds, done.stdout.strip()


def check_tree(src: Path, dst: Path, rels: list[str]) -> None:
    bad = [r for r in rels if (src / r).read_bytes() != (dst / r).read_bytes()]
    if bad:
        raise BenchError(f"{len(bad)} synced files differ, e.g. {bad[0]}")


def zip_rounds(ours: Ours, root: Path, count: int, rounds: int) -> dict[str, list[float]]:
    rels = make_tree(root / "zipset", count, 7)
    dirs = sorted({f"zipset/{r.split('/')[0]}" for r in rels})
    rates: dict[str, list[float]] = {"ours": [], "zip": []}
    print(f"(a) {count} x 4 KiB in {len(dirs)} directories, one archive per pass")
    for rnd in range(rounds):
        for side in ["ours", "zip"] if rnd % 2 == 0 else ["zip", "ours"]:
            if side == "ours":
                seconds = asyncio.run(zip_download(ours, dirs, count))
            else:
                seconds = zip_anchor(root, dirs)
            rates[side].append(count / seconds)
            print(f"  round {rnd + 1} {side:<5} {rates[side][-1]:8.0f} files/s", flush=True)
    return rates


def sync_rounds(ours: Ours, scratch: Path, count: int, rounds: int) -> dict[str, list[float]]:
    src = scratch / "local-tree"
    rels = make_tree(src, count, 11)
    payload_rels = [f"put-{{}}/{r}" for r in rels]
    token = ours.user_token()
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{ours.client}/api/v1/vfolders/{ours.volume}/{VFID}"
    payload = random.Random(3).randbytes(SMALL)
    rates: dict[str, list[float]] = {"put": [], "sync": [], "resync": []}
    print(f"\n(b) a tree of {count} x 4 KiB: storage-proxy-client sync, first and unchanged")
    for rnd in range(rounds):
        remote = f"{ours.volume}:{VFID}/sync-{rnd}"
        for side in ["put", "sync"] if rnd % 2 == 0 else ["sync", "put"]:
            if side == "put":
                names = [p.format(rnd) for p in payload_rels]
                seconds = asyncio.run(put_each(api, names, payload, headers))
                rates["put"].append(count / seconds)
                print(f"  round {rnd + 1} put    {rates['put'][-1]:8.0f} files/s", flush=True)
                continue
            seconds, out = run_sync(ours, token, src, remote, scratch)
            check_tree(src, ours.mount / f"sync-{rnd}", rels)
            rates["sync"].append(count / seconds)
            again, out2 = run_sync(ours, token, src, remote, scratch)
            if out2 != f"sync: {count} unchanged":
                raise BenchError(f"the re-sync did something: {out2!r} (first: {out!r})")
            rates["resync"].append(count / again)
            print(f"  round {rnd + 1} sync   {rates['sync'][-1]:8.0f} files/s (first), "
                  f"{rates['resync'][-1]:8.0f} files/s (unchanged)", flush=True)  # fmt: skip
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--zip-files", type=int, default=10_000)
    p.add_argument("--sync-files", type=int, default=2_000)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--strict", action="store_true")
    args = p.parse_args(argv)
    load0, revision = os.getloadavg()[0], source_revision()
    with tempfile.TemporaryDirectory(prefix="sp-bench-many-") as tmp:
        ours = Ours(Path(tmp), args.num_proc)
        with ours.running():
            root = ours.ensure_vfolder()
            zips = zip_rounds(ours, root, args.zip_files, args.rounds)
            syncs = sync_rounds(ours, Path(tmp), args.sync_files, args.rounds)
    ours_zip, anchor = statistics.median(zips["ours"]), statistics.median(zips["zip"])
    put, first, again = (statistics.median(syncs[k]) for k in ("put", "sync", "resync"))
    ok = ours_zip / anchor >= TARGET
    print(f"\nmany files: medians of {args.rounds} rounds; ours {revision}, num-proc "
          f"{args.num_proc}; load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"zip -0 -r > /dev/null          {anchor:8.0f} files/s")
    print(f"GET /download-archive (zip)    {ours_zip:8.0f} files/s   {ours_zip / anchor:.2f}x")
    print(f"target: zip download >= {TARGET}x zip -0 -r: {'PASS' if ok else 'FAIL'}")
    print(f"one PUT per file, 32 clients   {put:8.0f} files/s")
    print(f"sync, first                    {first:8.0f} files/s   {first / put:.2f}x")
    print(f"sync, nothing changed          {again:8.0f} files/s   {again / put:.2f}x")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
