"""The differentials against Backend.AI's reference releases: each plays ``bench/compat.py``'s
conversation against a reference (started with the shared bench-peer scripts) and this daemon in
the matching dialect.  The reference runs under ``/tmp/peer-bench.lock``, so two peers never
collide."""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = BENCH.parents[1] / "shared" / "bench-peer"
sys.path.insert(0, str(BENCH))

import compat  # noqa: E402


@pytest.fixture
def differential() -> Iterator[Callable[[str], list[dict]]]:
    """Plays against the named release; fails on an unlisted difference, and on a listed
    departure that no longer differs.  Gives every observation."""

    def play(name: str) -> list[dict]:
        release = compat.RELEASES[name]
        if not (SCRIPTS / release.scripts[1]).is_file():
            pytest.skip("the bench-peer scripts are not here")
        rows = compat.run(SCRIPTS, BENCH / release.peer_dir, release)
        text, clean = compat.report(rows)
        print(text)
        assert clean, text
        # a departure is a disagreement: none is listed for an observation that agrees
        differing = {(r["step"], r["kind"]) for r in rows if not r["agree"]}
        unused = set(release.departures) - differing
        assert not unused, f"departures listed for observations that agree: {sorted(unused)}"
        return rows

    with open("/tmp/peer-bench.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield play
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
