"""The process tuning (``runtime.tune``): bodies' bytes stop paying page faults; the collector
stops walking the heap for every few cached tokens."""

from __future__ import annotations

import os
import subprocess
import sys

from storage_proxy import runtime

CHURN = """
import random, resource, sys
from storage_proxy import runtime
print(",".join(runtime.tune()) if sys.argv[1] == "on" else "", flush=True)
rnd, held = random.Random(1), []
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3000):  # body pieces and joined reads of an upload, a few alive at a time
    held.append(b"\\x01" * rnd.choice([64 << 10, 256 << 10, 700 << 10, 1000 << 10]))
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
    assert f"malloc_mmap_threshold={runtime.MMAP_THRESHOLD}" in settings
    assert tuned * 10 < untuned, (tuned, untuned)


def test_the_operators_malloc_settings_win() -> None:
    settings, _ = _run("on", MALLOC_MMAP_THRESHOLD_="131072")
    assert "mmap" not in settings and "malloc_trim_threshold" in settings


CACHE = """
import gc, sys
from storage_proxy import runtime
if sys.argv[1] == "on":
    runtime.tune()
    runtime.freeze_startup()
    assert gc.get_freeze_count() > 0
before = [s["collections"] for s in gc.get_stats()]
kept = {}
for i in range(30_000):  # a token's first use: its claims and its grant stay cached
    kept[f"token-{i}"] = (float(i), {"op": "download", "vfid": f"v{i}", "by": {"sub": "u"}})
print(",".join(str(s["collections"] - b) for s, b in zip(gc.get_stats(), before)))
"""


def test_cached_tokens_do_not_make_the_collector_walk_the_heap_over_and_over() -> None:
    def collections(mode: str) -> list[int]:
        out = subprocess.run(
            [sys.executable, "-c", CACHE, mode], capture_output=True, text=True, check=True
        )
        return [int(n) for n in out.stdout.strip().split(",")]

    default, tuned = collections("off"), collections("on")
    assert default[2] >= 1 and tuned[2] == 0, (default, tuned)  # full collections
    assert tuned[0] * 10 < default[0], (default, tuned)
