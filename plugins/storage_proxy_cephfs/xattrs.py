"""CephFS virtual xattrs: quotas (``ceph.quota.*``) and recursive stats (``ceph.dir.r*``).

Plain blocking calls; the volume and quota model run them in worker threads.  Ceph answers
``ENODATA`` for a quota that was never set (or was unset by writing ``0``), so both mean "none".
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from pathlib import Path

MAX_BYTES = "ceph.quota.max_bytes"
MAX_FILES = "ceph.quota.max_files"
RBYTES = "ceph.dir.rbytes"
RFILES = "ceph.dir.rfiles"


def get_int(path: Path, name: str) -> int | None:
    """The xattr as an integer; ``None`` when it is not set."""
    try:
        raw = os.getxattr(path, name)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise
    return int(raw.decode().strip() or 0)


def get_limit(path: Path, name: str = MAX_BYTES) -> int | None:
    """A quota limit; ``None`` when there is none (unset, ``0``, or the directory is gone)."""
    try:
        value = get_int(path, name)
    except FileNotFoundError:
        return None
    return value or None


def set_limit(path: Path, limit: int | None, name: str = MAX_BYTES) -> None:
    """Set a quota limit; ``None`` or ``0`` removes it (Ceph's own meaning of ``0``)."""
    os.setxattr(path, name, str(limit or 0).encode())


def rstats(path: Path) -> tuple[int, int]:
    """``(files, bytes)`` below ``path`` from the MDS's recursive stats: O(1), no tree walk."""
    return get_int(path, RFILES) or 0, get_int(path, RBYTES) or 0


def is_cephfs(path: Path) -> bool:
    """True when ``path`` is on CephFS (it answers the recursive-stat vxattrs)."""
    try:
        return get_int(path, RBYTES) is not None
    except OSError:
        return False


def client_enforces(path: Path, limit: int) -> bool:
    """Whether this client already refuses writes past ``limit`` below ``path``.

    Ceph hands a new quota realm to clients asynchronously (about a second): until then files in
    existing subdirectories are not limited.  The probe is a file in a fresh subdirectory grown
    (sparsely, no data) to ``limit + 1`` bytes: EDQUOT means the limit is in force here.
    """
    probe_dir = path / f".sp-quota-probe-{uuid.uuid4().hex}"
    os.mkdir(probe_dir)
    probe = probe_dir / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, limit + 1)
        except OSError as e:
            if e.errno == errno.EDQUOT:
                return True
            raise
        finally:
            os.close(fd)
        return False
    finally:
        probe.unlink(missing_ok=True)
        os.rmdir(probe_dir)


def wait_enforced(path: Path, limit: int, timeout: float) -> bool:
    """Poll :func:`client_enforces` until true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not client_enforces(path, limit):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return True
