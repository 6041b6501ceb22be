"""Many small files up: one ``PUT`` per file against one ``POST …/batch`` tar stream.

The issue-18 figure: 10,000 files of 4 KiB uploaded into a vfolder through the file API with a
user token, (a) one ``PUT /api/v1/…/files/<path>`` per file from 32 concurrent aiohttp clients,
(b) the same files as one tar stream to ``POST /api/v1/…/batch`` (built in memory before the
clock starts, like the PUT bodies). Rounds alternate which goes first, into fresh folders;
figures are medians. Every file's content is checked on disk after each pass.

    python bench/batch_upload.py                 # 10,000 files, 3 rounds, num-proc 2
    python bench/batch_upload.py --files 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import aiohttp
from small_files import Ours
from transfers import VFID, BenchError, source_revision

SMALL = 4096
CONCURRENCY = 32
TARGET = 10.0  # batch rate / PUT-per-file rate


def make_tar(rels: list[str], payload: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in rels:
            info = tarfile.TarInfo(rel)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


async def put_each(api: str, rels: list[str], payload: bytes, headers: dict[str, str]) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        pending = iter(rels)

        async def worker() -> None:
            for rel in pending:
                async with session.put(f"{api}/files/{rel}", data=payload) as resp:
                    if resp.status != 201:
                        raise BenchError(f"PUT {rel}: {resp.status} {await resp.text()}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - t0


async def post_batch(api: str, body: bytes, count: int, headers: dict[str, str]) -> float:
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        t0 = time.perf_counter()
        async with session.post(
            f"{api}/batch", data=body, headers={"Content-Type": "application/x-tar"}
        ) as resp:
            out = await resp.json()
        seconds = time.perf_counter() - t0
    if resp.status != 200 or out["stored"] != count or out["aborted"] is not None:
        raise BenchError(f"batch: {resp.status} stored {out.get('stored')} of {count}")
    return seconds


def check(root: Path, rels: list[str], payload: bytes) -> None:
    bad = [r for r in rels if (root / r).read_bytes() != payload]
    if bad:
        raise BenchError(f"{len(bad)} files differ on disk, e.g. {bad[0]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--strict", action="store_true")
    args = p.parse_args(argv)
    payload = random.Random(7).randbytes(SMALL)
    load0, revision = os.getloadavg()[0], source_revision()
    rates: dict[str, list[float]] = {"put": [], "batch": []}
    with tempfile.TemporaryDirectory(prefix="sp-bench-batch-") as tmp:
        ours = Ours(Path(tmp), args.num_proc)
        with ours.running():
            root = ours.ensure_vfolder()
            headers = {"Authorization": f"Bearer {ours.user_token()}"}
            api = f"{ours.client}/api/v1/vfolders/{ours.volume}/{VFID}"
            print(f"{args.rounds} rounds, {args.files} x 4 KiB, PUTs from {CONCURRENCY} clients")
            for rnd in range(args.rounds):
                sides = ["put", "batch"] if rnd % 2 == 0 else ["batch", "put"]
                for side in sides:
                    rels = [f"{side}-{rnd}/d{i // 500:03d}/f{i:05d}.bin" for i in range(args.files)]
                    if side == "put":
                        seconds = asyncio.run(put_each(api, rels, payload, headers))
                    else:
                        body = make_tar(rels, payload)
                        seconds = asyncio.run(post_batch(api, body, len(rels), headers))
                    check(root, rels, payload)
                    rates[side].append(len(rels) / seconds)
                    print(f"  round {rnd + 1} {side:<5} {rates[side][-1]:8.0f} files/s", flush=True)
    put, batch = statistics.median(rates["put"]), statistics.median(rates["batch"])
    ok = batch / put >= TARGET
    print(f"\nbatch upload: medians of {args.rounds} rounds; ours {revision}, num-proc "
          f"{args.num_proc}; load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"one PUT per file   {put:8.0f} files/s")
    print(f"POST …/batch (tar) {batch:8.0f} files/s   {batch / put:.2f}x")
    print(f"target: batch >= {TARGET:.0f}x one PUT per file: {'PASS' if ok else 'FAIL'}")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
