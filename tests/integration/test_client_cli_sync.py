"""``storage-proxy-client sync`` both ways against a running daemon: only what differs moves
(size, then sha256), small files in batches and large ones through tus, ``--dry-run`` changes
nothing, ``--delete`` removes extraneous files, links are never followed, failures are listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from api_fixtures import Daemon
from client_cli import VFID, alice_folder, cli


def tree_of(root: Path) -> dict[str, bytes]:
    """Regular files below root (links not followed): relative path -> content."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if not path.is_symlink():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(60):
        (src / "small" / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / "small" / f"d{i % 3}" / f"f{i}.txt").write_bytes(os.urandom(4096 + i))
    (src / "big.bin").write_bytes(os.urandom(3 << 20))  # above the batch limit: tus
    (src / "name with spaces.txt").write_text("spaces")
    (src / "odd #1 ?x=50%.txt").write_text("a name that is not a URL")
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("never uploaded")
    (outside / "dir" / "inner.txt").write_text("never uploaded either")
    (src / "link-to-file").symlink_to(outside / "secret.txt")
    (src / "small" / "link-to-dir").symlink_to(outside / "dir")
    return src


async def test_sync_up_only_what_differs(daemon: Daemon, tmp_path: Path, source: Path) -> None:
    vf = await alice_folder(daemon)
    remote = f"vol1:{VFID}/data"
    run = await cli(daemon, tmp_path, "sync", "--dry-run", str(source), remote)
    assert run.code == 0, run.both
    assert "big.bin  (new, 3145728 bytes)" in run.out and "small/d0/f0.txt" in run.out
    assert "63 to do" in run.out and not (vf / "data").exists()
    assert "skipped link-to-file: symbolic link, not followed" in run.err
    run = await cli(daemon, tmp_path, "sync", "-j", "4", str(source), remote)
    assert run.code == 0, run.both
    assert "63 uploaded" in run.out and "2 skipped" in run.out
    assert tree_of(vf / "data") == tree_of(source)
    assert not (vf / "data" / "link-to-file").exists()
    assert not (vf / "data" / "small" / "link-to-dir").exists()

    again = await cli(daemon, tmp_path, "sync", str(source), remote)
    assert again.code == 0 and again.out.strip() == "sync: 63 unchanged, 2 skipped", again.both

    f1 = source / "small" / "d1" / "f1.txt"
    f1.write_bytes(os.urandom(f1.stat().st_size))  # same size, other content
    (source / "small" / "d2" / "f2.txt").write_bytes(b"shorter")
    (source / "new.txt").write_text("new")
    (source / "big.bin").unlink()
    run = await cli(daemon, tmp_path, "sync", "-n", "--delete", str(source), remote)
    assert run.code == 0, run.both
    assert "small/d1/f1.txt  (content differs" in run.out
    assert "small/d2/f2.txt  (size 4098 → 7" in run.out
    assert "new.txt  (new" in run.out and "delete   big.bin" in run.out
    assert "4 to do" in run.out and (vf / "data" / "big.bin").exists()
    run = await cli(daemon, tmp_path, "sync", "--delete", str(source), remote)
    assert run.code == 0, run.both
    assert "3 uploaded" in run.out and "1 deleted" in run.out and "60 unchanged" in run.out
    assert tree_of(vf / "data") == tree_of(source)


async def test_sync_down_and_back(daemon: Daemon, tmp_path: Path, source: Path) -> None:
    vf = await alice_folder(daemon)
    run = await cli(daemon, tmp_path, "sync", str(source), f"vol1:{VFID}")
    assert run.code == 0, run.both
    dst = tmp_path / "dst"
    run = await cli(daemon, tmp_path, "sync", f"vol1:{VFID}/small", str(dst))
    assert run.code == 0 and "60 downloaded" in run.out, run.both
    assert tree_of(dst) == tree_of(source / "small")
    run = await cli(daemon, tmp_path, "sync", f"vol1:{VFID}/small", str(dst))
    assert run.out.strip() == "sync: 60 unchanged", run.both

    changed = dst / "d0" / "f3.txt"
    changed.write_bytes(os.urandom(changed.stat().st_size))
    (dst / "extra.txt").write_text("only here")
    (dst / "d1").rename(tmp_path / "moved-away")
    (dst / "d1").symlink_to(tmp_path / "moved-away")  # a link where a directory should be
    run = await cli(daemon, tmp_path, "sync", "--delete", f"vol1:{VFID}/small", str(dst))
    assert run.code == 1, run.both
    assert "1 downloaded" in run.out and "1 deleted" in run.out and "20 failed" in run.out
    assert "d1/f1.txt:" in run.err and "symbolic link; not followed" in run.err
    assert "20 file(s) failed" in run.err
    assert changed.read_bytes() == (vf / "small" / "d0" / "f3.txt").read_bytes()
    assert not (dst / "extra.txt").exists()
    assert sorted(p.name for p in (tmp_path / "moved-away").iterdir()) == sorted(
        p.name for p in (source / "small" / "d1").iterdir()
    )  # nothing written through the link


async def test_sync_lists_each_failure(daemon: Daemon, tmp_path: Path) -> None:
    vf = await alice_folder(daemon)
    (vf / "x" / "y").mkdir(parents=True)  # a directory where the local tree has a file
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("a file")
    (src / "ok.txt").write_text("fine")
    run = await cli(daemon, tmp_path, "sync", str(src), f"vol1:{VFID}")
    assert run.code == 1, run.both
    assert "1 uploaded" in run.out and "1 failed" in run.out
    assert "1 file(s) failed:" in run.err and "  x: " in run.err
    assert (vf / "ok.txt").read_text() == "fine"
    run = await cli(daemon, tmp_path, "sync", str(src), str(tmp_path / "elsewhere"))
    assert run.code == 2 and "VOLUME:VFID[/PREFIX]" in run.err
    run = await cli(daemon, tmp_path, "sync", str(src), f"vol1:{VFID}", token="nope")
    assert run.code == 1 and "invalid-token" in run.err
