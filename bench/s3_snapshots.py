#!/usr/bin/env python3
"""Snapshots of an s3 vfolder on a real Ceph RGW, against a clone of the same vfolder.

Starts a throw-away single-node RGW (``tests/s3_server.py``), and drives the s3 volume class
in-process (no daemon: what is measured is the storage work, not HTTP) on two buckets, one with
versioning on and one without.  A vfolder of ``--files`` small files is made on each; then, per
run, alternating which goes first:

- anchor: ``clone_vfolder`` of the vfolder (one server-side copy per file), same bucket, same run;
- a snapshot by copies (unversioned bucket): target within 1.2x of the clone;
- a snapshot by versions (versioned bucket: one listing, no copy): target 0.25x of the clone;
- a restore of the whole vfolder after every file changed (server-side copies back), on each
  bucket: target within 1.5x of the clone (it also compares and overwrites).

Figures are medians of ``--runs``, ratios are of those medians, all measured in the same run on
the same RGW (a shared machine: compare ratios, not seconds).

    python bench/s3_snapshots.py [--files 1000] [--runs 3] [--strict]

Exit status: 0 (1 with ``--strict`` when a target is missed), 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import RgwServer, S3Endpoint, new_bucket  # noqa: E402

from contract.backend_s3 import s3_options  # noqa: E402
from storage_proxy.core.paths import RelPath  # noqa: E402
from storage_proxy.core.snapshots import RestoreOptions  # noqa: E402
from storage_proxy.core.types import QuotaScopeID, QuotaScopeType, VFolderID  # noqa: E402
from storage_proxy.metadata.sqlite import SqliteMetadataStore  # noqa: E402
from storage_proxy.services.books import MetadataBooks  # noqa: E402
from storage_proxy.volumes.abc import VolumeDeps  # noqa: E402
from storage_proxy.volumes.scan import TreeScanner  # noqa: E402
from storage_proxy_s3 import S3Volume  # noqa: E402

COPIES_RATIO, VERSIONS_RATIO, RESTORE_RATIO = 1.2, 0.25, 1.5


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _timed(op: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await op()
    return time.perf_counter() - t0


async def _populate(volume: S3Volume, files: int, tag: bytes) -> VFolderID:
    qsid = QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())
    await volume.quota_model.create_quota_scope(qsid, None)
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)
    sem = asyncio.Semaphore(16)

    async def put(i: int) -> None:
        async with sem:
            rel = RelPath.parse(f"d{i % 20}/f{i}.bin")
            await volume.write(vfid, rel, _one(tag + i.to_bytes(4, "big") * 256))

    await asyncio.gather(*(put(i) for i in range(files)))
    return vfid


async def _measure(volume: S3Volume, files: int, runs: int) -> dict[str, list[float]]:
    vfid = await _populate(volume, files, b"v1")
    samples: dict[str, list[float]] = {"clone": [], "snapshot": [], "restore": []}
    for run in range(runs):
        sid = f"b{run}"
        clone = VFolderID(vfid.quota_scope_id, uuid.uuid4())
        ops = {
            "clone": lambda c=clone: volume.clone_vfolder(vfid, c),
            "snapshot": lambda s=sid: volume.create_snapshot(vfid, s),
        }
        for name in list(ops) if run % 2 == 0 else list(ops)[::-1]:
            samples[name].append(await _timed(ops[name]))
        for i in range(0, files, max(1, files // 50)):  # change a spread of files
            rel = RelPath.parse(f"d{i % 20}/f{i}.bin")
            await volume.write(vfid, rel, _one(b"changed"))
        samples["restore"].append(
            await _timed(lambda s=sid: volume.restore_snapshot(vfid, s, RestoreOptions()))
        )
    return samples


@asynccontextmanager
async def _volume(ep: S3Endpoint, bucket: str, scratch: Path, name: str) -> AsyncIterator[S3Volume]:
    store = SqliteMetadataStore(scratch / f"{name}.sqlite3")
    await store.open()
    deps = VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    options = s3_options(ep, bucket, **{"create-bucket": False})
    volume = S3Volume(name, scratch / name, options=options, deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()
        await store.close()


async def run(args: argparse.Namespace, scratch: Path) -> bool:
    rgw = RgwServer()
    print("starting Ceph RGW ...", flush=True)
    ep = rgw.start()
    try:
        plain = new_bucket(ep, "bench-copies")
        versioned = new_bucket(ep, "bench-versions")
        ep.client().put_bucket_versioning(
            Bucket=versioned, VersioningConfiguration={"Status": "Enabled"}
        )
        results = {}
        for mode, bucket in (("copies", plain), ("versions", versioned)):
            async with _volume(ep, bucket, scratch, mode) as volume:
                results[mode] = await _measure(volume, args.files, args.runs)
    finally:
        rgw.stop()
    passed = True
    targets = {"copies": COPIES_RATIO, "versions": VERSIONS_RATIO}
    print(f"{args.files} files, median of {args.runs} runs (shared machine: ratios, not seconds)")
    for mode, samples in results.items():
        clone = statistics.median(samples["clone"])
        snap = statistics.median(samples["snapshot"]) / clone
        restore = statistics.median(samples["restore"]) / clone
        ok_snap, ok_restore = snap <= targets[mode], restore <= RESTORE_RATIO
        passed = passed and ok_snap and ok_restore
        print(
            f"{mode:8s} clone {clone * 1000:8.1f} ms | snapshot {snap:5.2f}x "
            f"(target <= {targets[mode]}x: {'PASS' if ok_snap else 'FAIL'}) | restore "
            f"{restore:5.2f}x (target <= {RESTORE_RATIO}x: {'PASS' if ok_restore else 'FAIL'})"
        )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the vfolder (1000)")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="sp-s3-snap-bench-") as tmp:
            passed = asyncio.run(run(args, Path(tmp)))
    except RuntimeError as e:
        print(f"s3_snapshots: cannot run: {e}", file=sys.stderr)
        sys.exit(2)
    if args.strict and not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
