"""The usage scanner: exact counts, the same answer from one thread and from the process pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage_proxy.volumes.scan import TreeScanner, scan_tree


def make_tree(root: Path, dirs: int = 40, files: int = 25) -> tuple[int, int]:
    total = 0
    for d in range(dirs):
        sub = root / f"d{d % 5}" / f"s{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            size = (d * files + f) % 97
            (sub / f"f{f}").write_bytes(b"z" * size)
            total += size
    os.symlink("d0", root / "link-to-dir")  # counted as one entry, never followed
    return dirs * files + 1, total + len("d0")


@pytest.mark.parametrize("workers", [0, 2])
async def test_scan_counts_exactly(tmp_path: Path, workers: int) -> None:
    count, size = make_tree(tmp_path / "t")
    scanner = TreeScanner(workers)
    try:
        await scanner.start()
        usage = await scanner.scan(tmp_path / "t")
    finally:
        await scanner.close()
    assert (usage.file_count, usage.used_bytes) == (count, size)
    # directories apart (Backend.AI's file_count counts them): d0..d4 and the 40 below them
    assert usage.dir_count == 45
    assert usage.dir_bytes == sum(
        os.lstat(p).st_size
        for p in (tmp_path / "t").rglob("*")
        if p.is_dir() and not p.is_symlink()
    )


def test_partial_walk_leaves_a_frontier(tmp_path: Path) -> None:
    make_tree(tmp_path / "t")
    _, frontier = scan_tree(str(tmp_path / "t"), fanout=8)
    assert len(frontier) >= 8
    assert all(path.startswith(str(tmp_path / "t")) and ino for path, _, ino in frontier)


async def test_missing_root_counts_nothing(tmp_path: Path) -> None:
    usage = await TreeScanner(0).scan(tmp_path / "absent")
    assert (usage.file_count, usage.used_bytes) == (0, 0)
