"""The allocator tuning (``allocator.tune``): bodies' bytes stop paying page faults."""

from __future__ import annotations

import os
import subprocess
import sys

CHURN = """
import random, resource, sys
from storage_proxy import allocator
print(",".join(allocator.tune()) if sys.argv[1] == "on" else "", flush=True)
rnd, held = random.Random(1), []
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3000):  # body pieces and joined reads of an upload, a few alive at a time
    held.append(b"\\x01" * rnd.choice([64 << 10, 256 << 10, 700 << 10, 1500 << 10]))
    if len(held) > 4:
        held.pop(0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return out[0], int(out[1])


def test_tuned_allocator_does_not_fault_on_every_body_piece() -> None:
    _, untuned = _run("off")
    settings, tuned = _run("on")
    assert "malloc_mmap_threshold=4194304" in settings
    assert tuned * 10 < untuned, (tuned, untuned)


def test_the_operators_malloc_settings_win() -> None:
    settings, _ = _run("on", MALLOC_MMAP_THRESHOLD_="131072")
    assert "mmap" not in settings and "malloc_trim_threshold" in settings
