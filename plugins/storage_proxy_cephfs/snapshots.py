"""CephFS native snapshots: ``mkdir <vfolder>/.snap/<id>`` takes one at once, copy-on-write.

The storage is the one record: a vfolder's snapshots are the entries of its root's ``.snap``
directory (entries named ``_<name>_<inode>`` are snapshots of an ancestor and not the
vfolder's), their time the ``ceph.snap.btime`` vxattr, their size the ``ceph.dir.rbytes`` the
snapshot froze (lazy rstats: a file written a moment before may not be counted yet).  Snapshot
data is not counted by CephFS quotas, so ``snapshot-quota`` is not declared.

``.snap`` exists in every directory without being listed; the volume names it in
``hidden_names`` so no user path (or symlink) below a vfolder may pass through it.  A directory
that holds snapshots cannot be removed (ENOTEMPTY): purging a trashed vfolder removes its
snapshots first.

Blocking helpers; the volume runs them in its I/O pool.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from storage_proxy.core.snapshots import SnapshotInfo
from storage_proxy.volumes import fsremove, fstree
from storage_proxy.volumes.beneath import opened

SNAP_DIR = ".snap"
BTIME = "ceph.snap.btime"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def open_snapdir(root_fd: int) -> int:
    """The ``.snap`` directory of a held directory."""
    return os.open(SNAP_DIR, _DIR, dir_fd=root_fd)


def own_snapshots(snap_fd: int) -> list[str]:
    """Snapshots taken of this directory (an ancestor's show as ``_<name>_<ino>``)."""
    return sorted(n for n in os.listdir(snap_fd) if not n.startswith("_"))


def describe(snap_fd: int, name: str) -> SnapshotInfo:
    with opened(os.open(name, _DIR, dir_fd=snap_fd)) as fd:
        st = os.fstat(fd)
        created = float(st.st_mtime)
        with contextlib.suppress(OSError, ValueError):
            created = float(os.getxattr(fd, BTIME).decode().strip())
        size: int | None = None
        with contextlib.suppress(OSError, ValueError):
            size = int(os.getxattr(fd, "ceph.dir.rbytes").decode().strip() or 0) or None
    return SnapshotInfo(name, datetime.fromtimestamp(created, UTC), size)


def remove_tree(path: Path) -> None:
    """``rm -rf`` of a tree that may hold snapshots (of itself or of directories below)."""
    with contextlib.suppress(OSError):
        fsremove.remove_path(path)
    if not os.path.lexists(path):
        return
    with contextlib.suppress(OSError):
        with opened(os.open(path, fstree.O_LIST_DIR | os.O_NOFOLLOW)) as top:
            drop_snapshots(top)
            for parent, entry in fstree.walk(top):
                if entry.is_dir:
                    sub = fstree.open_subdir(parent, entry.name)
                    if sub is not None:
                        with opened(sub):
                            drop_snapshots(sub)
    fsremove.remove_path(path)


def drop_snapshots(dir_fd: int) -> None:
    try:
        snap = open_snapdir(dir_fd)
    except OSError:
        return
    with opened(snap):
        for name in own_snapshots(snap):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(name, dir_fd=snap)
