"""Usage of a tree on NFS by a parallel walk in threads.

On NFS each directory read is a round trip to the server; the GIL is released while waiting, so
a few threads reading different directories at once overlap those round trips (the process-pool
scanner of the base helps with CPU-bound local walks, not with network latency).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from storage_proxy.core.types import VFolderUsage
from storage_proxy.volumes.scan import Subtree, scan_level


def _scan_dir(subtree: Subtree) -> tuple[int, int, list[Subtree]]:
    """Files and bytes directly in a directory, and its subdirectories (never a swapped-in
    link: see :data:`storage_proxy.volumes.scan.Subtree`)."""
    part = scan_level([subtree], descend=False)
    return part.file_count, part.used_bytes, part.pending_dirs


def threaded_scan(root: str, threads: int) -> VFolderUsage:
    """Walk ``root``, up to ``threads`` directories at a time (blocking: call it in a thread)."""
    count = size = 0
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="nfs-scan") as pool:
        pending: set[Future[tuple[int, int, list[Subtree]]]] = {
            pool.submit(_scan_dir, (root, 0, 0))
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                c, s, subdirs = future.result()
                count += c
                size += s
                pending.update(pool.submit(_scan_dir, d) for d in subdirs)
    return VFolderUsage(count, size)
