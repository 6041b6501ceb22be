"""The sync command's pure parts: how a remote place is written, what a plan holds, and which
names from a server are refused before they name a local file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage_proxy.client.sync import Remote, Sides, make_plan, parse_remote, safe_rel, walk_local
from storage_proxy.client.transfer import TransferError

VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"


def test_remote_places() -> None:
    assert parse_remote(f"vol1:{VFID}") == Remote("vol1", VFID, "")
    assert parse_remote(f"vol1:{VFID}/") == Remote("vol1", VFID, "")
    assert parse_remote(f"vol1:{VFID}//a/b/") == Remote("vol1", VFID, "a/b")
    assert str(parse_remote(f"vol1:{VFID}/a")) == f"vol1:{VFID}/a"
    for local in ("data", "./vol1:x", "/tmp/a:b/c", f"dir/vol1:{VFID}", "C:stuff"):
        assert parse_remote(local) is None, local


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/\0"])
def test_names_refused(bad: str) -> None:
    with pytest.raises(TransferError):
        safe_rel(bad)


async def test_plan_by_size_then_content() -> None:
    source = {"same": 3, "other": 3, "grown": 4, "new": 1, "unreadable": 2}
    dest = {"same": 3, "other": 3, "grown": 3, "unreadable": 2, "extra": 9, "link": 1}
    dest |= {"dirlink/a": 1, "dirlink/b/c": 1, "dirlinked": 1}

    async def same(rel: str) -> bool:
        if rel == "unreadable":
            raise OSError("permission denied")
        return rel == "same"

    keep = ["link", "dirlink"]
    plan = await make_plan(Sides(source, dest), "upload", same, jobs=2, delete=True, keep=keep)
    got = {(a.kind, a.rel, a.reason) for a in plan.actions}
    assert got == {
        ("upload", "other", "content differs"),
        ("upload", "grown", "size 3 → 4"),
        ("upload", "new", "new"),
        ("delete", "extra", "not in source"),
        ("delete", "dirlinked", "not in source"),
    }
    assert plan.unchanged == 1 and list(plan.failed) == ["unreadable"]
    plan = await make_plan(Sides(source, dest), "upload", same, jobs=2, delete=False)
    assert not plan.of("delete")


def test_walk_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "t" / "d").mkdir(parents=True)
    (tmp_path / "t" / "d" / "f").write_bytes(b"12")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret").write_bytes(b"x")
    (tmp_path / "t" / "l").symlink_to(tmp_path / "out")
    (tmp_path / "t" / "fl").symlink_to(tmp_path / "out" / "secret")
    os.mkfifo(tmp_path / "t" / "fifo")
    tree = walk_local(tmp_path / "t")
    assert tree.files == {"d/f": 2}
    assert tree.skipped == {
        "l": "symbolic link, not followed",
        "fl": "symbolic link, not followed",
        "fifo": "not a regular file",
    }
