"""The differential against Backend.AI's storage-proxy 26.9.6: one conversation played against the
reference (started with the shared bench-peer scripts) and against this daemon in its default
dialect.  Every observation must agree but the departures ``bench/compat.py`` lists, each with
its reason.  Holds ``/tmp/peer-bench.lock`` while the reference runs, so two peers never
collide."""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import compat  # noqa: E402

SCRIPTS = BENCH.parents[1] / "shared" / "bench-peer"

pytestmark = pytest.mark.e2e


@pytest.fixture
def peer_lock() -> Iterator[None]:
    with open("/tmp/peer-bench.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.mark.skipif(
    not (SCRIPTS / "run_peer26.sh").is_file(), reason="the bench-peer scripts are not here"
)
def test_every_difference_from_26_9_6_is_a_listed_departure(peer_lock: None) -> None:
    rows = compat.run(SCRIPTS, BENCH / ".peer26")
    text, clean = compat.report(rows)
    print(text)
    assert clean, text
    # the conversation covers the new routes and the old ones
    assert sum(r["new"] for r in rows) > 100 and sum(not r["new"] for r in rows) > 150
    # a departure is a disagreement: none is listed for an observation that agrees
    unused = set(compat.DEPARTURES) - {(r["step"], r["kind"]) for r in rows if not r["agree"]}
    assert not unused, f"departures listed for observations that agree: {sorted(unused)}"
