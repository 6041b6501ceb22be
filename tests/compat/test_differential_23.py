"""The differential against Backend.AI's storage-proxy 23.9.10: the conversation of the 26.9.6
differential (the routes 23.9.10 has) played against the reference — installed and started with
the shared bench-peer scripts ``setup_peer.sh``, ``run_peer.sh``, ``stop_peer.sh`` (its ports are
fixed) — and against this daemon with ``[api.manager] compat = "23.09"``.  Every observation must
agree but the departures ``bench/compat.py`` lists for 23.9.10 (``DEPARTURES_23``), each with its
reason (``conftest.differential``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytestmark = pytest.mark.e2e


def test_every_difference_from_23_9_10_is_a_listed_departure(
    differential: Callable[[str], list[dict]],
) -> None:
    rows = differential("23.9.10")
    # the routes 23.9.10 has: the old ones and four the conversation counts as 26.09's
    assert sum(not r["new"] for r in rows) > 150 and sum(r["new"] for r in rows) > 40
