"""Usage of a tree on NFS by a parallel walk in threads.

On NFS each directory read is a round trip to the server; the GIL is released while waiting, so
a few threads reading different directories at once overlap those round trips (the process-pool
scanner of the base helps with CPU-bound local walks, not with network latency).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from storage_proxy.core.types import VFolderUsage
from storage_proxy.volumes.scan import Subtree, scan_level


def _scan_dir(subtree: Subtree) -> tuple[VFolderUsage, list[Subtree]]:
    """Files and bytes directly in a directory, and its subdirectories (never a swapped-in
    link: see :data:`storage_proxy.volumes.scan.Subtree`)."""
    part = scan_level([subtree], descend=False)
    usage = VFolderUsage(part.file_count, part.used_bytes, part.dir_count, part.dir_bytes)
    return usage, part.pending_dirs


def threaded_scan(root: str, threads: int) -> VFolderUsage:
    """Walk ``root``, up to ``threads`` directories at a time (blocking: call it in a thread)."""
    count = size = dirs = dir_size = 0
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="nfs-scan") as pool:
        pending: set[Future[tuple[VFolderUsage, list[Subtree]]]] = {
            pool.submit(_scan_dir, (root, 0, 0))
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                part, subdirs = future.result()
                count += part.file_count
                size += part.used_bytes
                dirs += part.dir_count
                dir_size += part.dir_bytes
                pending.update(pool.submit(_scan_dir, d) for d in subdirs)
    return VFolderUsage(count, size, dirs, dir_size)
