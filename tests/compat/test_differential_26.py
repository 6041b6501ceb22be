"""The differential against Backend.AI's storage-proxy 26.9.6: one conversation played against the
reference (installed and started with the shared bench-peer scripts ``setup_peer26.sh``,
``run_peer26.sh``, ``stop_peer26.sh``) and against this daemon in its default dialect.  Every
observation must agree but the departures ``bench/compat.py`` lists, each with its reason
(``conftest.differential``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytestmark = pytest.mark.e2e


def test_every_difference_from_26_9_6_is_a_listed_departure(
    differential: Callable[[str], list[dict]],
) -> None:
    rows = differential("26.9.6")
    # the conversation covers the new routes and the old ones
    assert sum(r["new"] for r in rows) > 100 and sum(not r["new"] for r in rows) > 150
