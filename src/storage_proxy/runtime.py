"""How each daemon process is tuned before it serves: glibc's allocator and Python's collector.

*The allocator.* Received bytes become Python objects of 64 KiB to about 1 MiB (the parser's
body pieces, joined reads). With glibc's defaults such a block is often mapped fresh and
unmapped when freed, or the heap top is trimmed and grown again, so every piece pays page faults
on its first touch: measured on a tus upload under uvloop (2 cores), half the upload rate and
twice the CPU. Blocks up to ``MMAP_THRESHOLD`` come from the heap instead; the heap top is given
back once more than ``TRIM_THRESHOLD`` of it is free (``TOP_PAD`` grown at once). Freed blocks
below the top stay with the process for reuse (as they do with glibc's own threshold once it
has risen): measured with 200 stalled TLS downloads, 116 MiB of RSS during and after, against
250 MiB on asyncio. An operator's own ``MALLOC_*_`` environment settings win; on other C
libraries nothing changes.

*The collector.* Every first use of a token leaves objects that live on (its verified claims and
its grant, kept until it expires), and with the default thresholds (700, 10, 10) those
survivors make the collector run every few dozen requests and walk the whole heap again and
again: about 15 us of CPU per small download with a token never seen before. The first
generation is collected every ``GEN0_THRESHOLD`` surviving allocations instead, the older ones
less often, and what exists once the daemon has started (modules, routes, volumes) is frozen
out of every collection (:func:`freeze_startup`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 16 << 20
TOP_PAD = 4 << 20
GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD = 20_000, 20, 20

_SETTINGS = (
    (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
    (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", TRIM_THRESHOLD),
    (M_TOP_PAD, "MALLOC_TOP_PAD_", TOP_PAD),
)


def tune() -> list[str]:
    """Tune this process (once, before it serves); returns the allocator settings made."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return _tune_allocator()


def freeze_startup() -> None:
    """Leave what exists now (a started daemon's modules, routes, volumes) out of every future
    collection."""
    gc.collect()
    gc.freeze()


def _tune_allocator() -> list[str]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = []
    for param, env, value in _SETTINGS:
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            done.append(f"{env.lower().strip('_')}={value}")
        else:
            log.debug("mallopt(%d, %d) was refused", param, value)
    return done
