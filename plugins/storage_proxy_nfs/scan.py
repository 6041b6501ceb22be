"""Usage of a tree on NFS by a parallel walk in threads.

On NFS each directory read is a round trip to the server; the GIL is released while waiting, so
a few threads reading different directories at once overlap those round trips (the process-pool
scanner of the base helps with CPU-bound local walks, not with network latency).
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from storage_proxy.types import VFolderUsage
from storage_proxy.volumes.scan import STAGING_MARK


def _scan_dir(path: str) -> tuple[int, int, list[str]]:
    """Files and bytes directly in ``path``, and its subdirectories."""
    count = size = 0
    subdirs: list[str] = []
    try:
        it = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0, 0, []  # vanished or unreadable while scanning: count what we can
    with it:
        for entry in it:
            if STAGING_MARK in entry.name:
                continue  # in-flight writes are accounted as reservations instead
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    count += 1
                    size += entry.stat(follow_symlinks=False).st_size
            except (FileNotFoundError, PermissionError):
                continue
    return count, size, subdirs


def threaded_scan(root: str, threads: int) -> VFolderUsage:
    """Walk ``root``, up to ``threads`` directories at a time (blocking: call it in a thread)."""
    count = size = 0
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="nfs-scan") as pool:
        pending: set[Future[tuple[int, int, list[str]]]] = {pool.submit(_scan_dir, root)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                c, s, subdirs = future.result()
                count += c
                size += s
                pending.update(pool.submit(_scan_dir, d) for d in subdirs)
    return VFolderUsage(count, size)
