"""glibc's allocator, tuned for a process that moves bodies through Python bytes.

Received bytes become Python objects of 64 KiB to a few MiB (the parser's body pieces, joined
reads). With glibc's defaults such a block is often mapped fresh and unmapped when freed, or
the heap top is trimmed and grown again, so every piece pays page faults on its first touch:
measured on a tus upload under uvloop (2 cores), half the upload rate and twice the CPU. Blocks
up to ``MMAP_THRESHOLD`` come from the heap instead, and up to ``TRIM_THRESHOLD`` of free heap
top is kept (``TOP_PAD`` grown at once): at most that much freed memory stays with the process.

An operator's own ``MALLOC_*_`` environment settings win; on other C libraries nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 16 << 20
TOP_PAD = 4 << 20

_SETTINGS = (
    (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
    (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", TRIM_THRESHOLD),
    (M_TOP_PAD, "MALLOC_TOP_PAD_", TOP_PAD),
)


def tune() -> list[str]:
    """Apply the settings (once per process, before serving); returns what was set."""
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
