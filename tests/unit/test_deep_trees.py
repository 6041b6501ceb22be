"""Trees a tenant nests deeper than PATH_MAX or than Python's recursion limit: the usage scan
counts all of them, walks and removals go any depth on a bounded number of descriptors, copies
refuse beyond ``max-tree-depth``, and the trash purge goes on past an entry it cannot remove."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import nested_dirs as chain
from helpers import remove_deep_trees
from storage_proxy.core.errors import TreeTooDeep
from storage_proxy.volumes import fsremove, fstree, posix_fs, posix_upkeep
from storage_proxy.volumes.scan import scan_level, scan_tree

LONG = "n" * 255
_DIR = os.O_RDONLY | os.O_DIRECTORY


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """pytest removes old temporary directories recursively: deep trees go here, at any depth."""
    yield
    remove_deep_trees(tmp_path)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def held(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, _DIR)
    yield fd
    os.close(fd)


def test_usage_scan_counts_data_beyond_path_max(tmp_path: Path) -> None:
    root = tmp_path / "vf"
    root.mkdir()
    chain(root, 20, LONG, b"x" * 5000)  # 20 * 256 bytes of path: past PATH_MAX (4096)
    usage, _ = scan_tree(str(root))
    assert (usage.file_count, usage.used_bytes, usage.dir_count) == (1, 5000, 20)
    # the fanned-out scan (workers) and the one-level-at-a-time scan (NFS) count it too
    usage, frontier = scan_tree(str(root), fanout=64)
    assert frontier == [] and usage.used_bytes == 5000
    pending, count, size = [(str(root), 0, 0)], 0, 0
    while pending:
        part = scan_level(pending, descend=False)
        pending, count, size = part.pending_dirs, count + part.file_count, size + part.used_bytes
    assert (count, size) == (1, 5000)


def test_usage_scan_of_a_deep_chain_holds_few_descriptors(tmp_path: Path) -> None:
    chain(tmp_path, 3000, payload=b"y" * 10)
    before = open_fds()
    seen = 0
    with fstree_fd(tmp_path) as top:
        for _ in fstree.descend(top):
            seen += 1
            if seen % 500 == 0:
                assert open_fds() - before < 2 * fstree.HELD_LEVELS + 8
    usage, _ = scan_tree(str(tmp_path))
    assert (usage.file_count, usage.used_bytes, usage.dir_count) == (1, 10, 3000)


def test_walk_paths_at_any_depth(tmp_path: Path, held: int) -> None:
    chain(tmp_path, 40, "ab")
    entries = [e.path for _, e in fstree.walk(held)]
    assert entries[-1] == "/".join(["ab"] * 40) + "/f"
    assert len(entries) == 41


def test_remove_entry_of_a_3000_level_tree(tmp_path: Path, held: int) -> None:
    (tmp_path / "top").mkdir()
    chain(tmp_path / "top", 3000)
    st = os.stat("top", dir_fd=held, follow_symlinks=False)
    before = open_fds()
    posix_fs.remove_entry(held, "top", st, recursive=True)
    assert os.listdir(tmp_path) == [] and open_fds() == before


def test_remove_tree_never_follows_a_link(tmp_path: Path, held: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "link").symlink_to(outside)
    (tree / "a" / "link2").symlink_to(outside / "keep.txt")
    fsremove.remove_tree(held, "tree")
    assert not tree.exists() and (outside / "keep.txt").read_text() == "keep"


def test_remove_tree_of_read_only_directories(tmp_path: Path, held: int) -> None:
    (tmp_path / "t" / "a" / "b").mkdir(parents=True)
    (tmp_path / "t" / "a" / "b" / "f").write_text("x")
    os.chmod(tmp_path / "t" / "a" / "b", 0o500)
    os.chmod(tmp_path / "t" / "a", 0o500)
    fsremove.remove_tree(held, "t")
    assert not (tmp_path / "t").exists()


def test_copy_refuses_a_tree_deeper_than_the_limit(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    chain(src, 40)
    with (
        pytest.raises(TreeTooDeep) as e,
        fstree_fd(src) as s,
        fstree_fd(dst) as d,
    ):
        fstree.copy_tree(s, d, limit_depth=30)
    assert e.value.status == 422 and e.value.code == "tree-too-deep"


def test_copy_at_the_limit_holds_a_bounded_number_of_descriptors(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    chain(src, 300, payload=b"z" * 3)
    (src / "d" / "side").mkdir()
    os.chmod(src / "d", 0o750)
    most = 0

    def copied(n: int) -> None:
        nonlocal most
        most = max(most, open_fds())

    before = open_fds()
    with fstree_fd(src) as s, fstree_fd(dst) as d:
        assert fstree.copy_tree(s, d, copied, limit_depth=301) == (1, 3)
    assert most - before < 2 * fstree.HELD_LEVELS + 8 and open_fds() == before
    assert [e.path for _, e in walk_of(src)] == [e.path for _, e in walk_of(dst)]
    assert (dst / "d").stat().st_mode & 0o777 == 0o750 and (dst / "d" / "side").is_dir()


def walk_of(path: Path) -> list[tuple[int, fstree.Entry]]:
    with fstree_fd(path) as fd:
        return sorted(fstree.walk(fd), key=lambda item: item[1].path)


class fstree_fd:  # noqa: N801 - a context manager named for what it holds
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, _DIR)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def test_trash_purge_goes_on_past_an_entry_it_cannot_remove(tmp_path: Path) -> None:
    trash = tmp_path / posix_upkeep.TRASH_DIR
    for name in ("a-deep", "b-bad", "c-other"):
        (trash / name).mkdir(parents=True)
    chain(trash / "a-deep", 3000)
    (trash / "c-other" / "f").write_text("x")

    def remove(path: Path) -> None:
        if path.name == "b-bad":
            raise OSError(5, "I/O error")
        fsremove.remove_path(path)

    report = posix_upkeep.purge_trash(tmp_path, float("inf"), remove)
    assert sorted(os.listdir(trash)) == ["b-bad"]
    assert len(report.purged) == 2 and report.kept == 1


def test_walk_climbs_back_where_it_was_when_a_tenant_moves_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the held levels the walk climbs through "..": a directory moved meanwhile is
    noticed (its ".." is elsewhere), the levels are reopened by name, the part that moved is
    given up, and nothing outside the walked tree is ever listed."""
    monkeypatch.setattr(fstree, "HELD_LEVELS", 2)
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (tree / "a" / "b" / "c" / "d" / "e").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "d" / "e" / "f1").write_text("x")
    (tree / "a" / "b" / "c" / "zz").write_text("x")
    (tree / "a" / "b" / "c" / "zz2").write_text("x")
    seen = []
    with fstree_fd(tree) as top:
        for _, entry in fstree.walk(top, sort=True):
            seen.append(entry.path)
            if entry.name == "f1":  # the tenant moves "d" away (out of the walk's sight)
                os.rename(tree / "a" / "b" / "c" / "d", outside / "d")
                os.rename(tree / "a" / "b" / "c", tree / "c-moved")
        assert open_fds() < 64
    assert all("secret" not in p for p in seen)
    assert seen[:6] == ["a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "a/b/c/d/e/f1"]
    assert "a/b/c/zz" not in seen  # "c" moved: the rest of it is given up, not guessed at


def test_walk_below_the_held_levels_lists_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fstree, "HELD_LEVELS", 2)
    for leaf in ("a/b/c/d/e", "a/b/c/x", "a/b/y", "a/z"):
        (tmp_path / "t" / leaf).mkdir(parents=True)
        (tmp_path / "t" / leaf / "f").write_text("x")
    expected = sorted(str(p.relative_to(tmp_path / "t")) for p in (tmp_path / "t").glob("**/*"))
    with fstree_fd(tmp_path / "t") as top:
        assert sorted(e.path for _, e in fstree.walk(top)) == expected
