"""Small helpers shared by the test suites (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from storage_proxy.core.types import QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.volumes import fsremove


def new_qsid(kind: QuotaScopeType = QuotaScopeType.USER) -> QuotaScopeID:
    return QuotaScopeID(kind, uuid.uuid4())


def new_vfid(qsid: QuotaScopeID | None = None) -> VFolderID:
    return VFolderID(qsid or new_qsid(), uuid.uuid4())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nested_dirs(root: Path, depth: int, name: str = "d", payload: bytes = b"") -> None:
    """``depth`` nested directories ``name``, with a file ``f`` holding ``payload`` in the
    deepest one, built relative to descriptors (the path would be too long to use)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        f = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, payload)
        os.close(f)
    finally:
        os.close(fd)


def remove_deep_trees(root: Path) -> None:
    """Remove what a test left below ``root``, whatever its depth (best effort)."""
    for entry in list(root.iterdir()) if root.is_dir() else []:
        try:
            fsremove.remove_path(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass
