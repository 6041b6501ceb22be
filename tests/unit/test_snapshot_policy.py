"""Snapshot policies: slots, names, and the retention arithmetic (keep-last N, keep-daily N, their
union, never a manual snapshot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage_proxy.core.errors import InvalidParameter
from storage_proxy.core.snapshot_policy import (
    SnapshotPolicy,
    check_manual_name,
    is_policy_snapshot,
    slot_name,
    to_keep,
    to_prune,
)
from storage_proxy.core.snapshots import SnapshotInfo, new_snapshot_id

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def auto(at: datetime) -> SnapshotInfo:
    return SnapshotInfo(slot_name(int(at.timestamp())), at)


def manual(at: datetime, name: str = "") -> SnapshotInfo:
    return SnapshotInfo(name or new_snapshot_id(now=at), at)


def test_slots_and_names() -> None:
    p = SnapshotPolicy(3600, keep_last=1)
    noon = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp())
    assert p.slot_start(noon) == noon and p.slot_start(noon + 3599.9) == noon
    assert p.slot_start(noon + 3600) == noon + 3600
    assert slot_name(noon) == "auto-20260301T120000Z"
    assert is_policy_snapshot("auto-20260301T120000Z")
    for other in ("auto-x", "auto-20260301T120000Z-1", "snap-20260301T120000Z-ab12", "mine"):
        assert not is_policy_snapshot(other)


def test_policies_that_cannot_be_are_refused() -> None:
    with pytest.raises(InvalidParameter):
        SnapshotPolicy(3600)  # keeps nothing
    with pytest.raises(InvalidParameter):
        SnapshotPolicy(0, keep_last=1)
    with pytest.raises(InvalidParameter):
        SnapshotPolicy(60, keep_last=-1)
    with pytest.raises(InvalidParameter):
        SnapshotPolicy.from_seconds(1.5, keep_last=1)
    with pytest.raises(InvalidParameter):
        check_manual_name("auto-mine")
    assert check_manual_name("mine") == "mine"


def test_keep_last_and_keep_daily_are_a_union() -> None:
    # three a day for four days, hourly at 09, 13, 17
    snaps = [auto(T0 + timedelta(days=d, hours=h)) for d in range(4) for h in (9, 13, 17)]
    snaps.append(manual(T0 + timedelta(hours=1)))
    last2 = to_keep(snaps, SnapshotPolicy(3600, keep_last=2))
    assert last2 == {snaps[-2].id, snaps[-3].id}  # the two newest policy ones (day 3 17h, 13h)
    daily3 = to_keep(snaps, SnapshotPolicy(3600, keep_daily=3))
    assert daily3 == {snaps[i].id for i in (11, 8, 5)}  # 17h of days 3, 2, 1
    both = to_keep(snaps, SnapshotPolicy(3600, keep_last=2, keep_daily=3))
    assert both == last2 | daily3
    pruned = to_prune(snaps, SnapshotPolicy(3600, keep_last=2, keep_daily=3))
    assert [s.id for s in pruned] == [snaps[i].id for i in (0, 1, 2, 3, 4, 6, 7, 9)]


def test_days_are_utc_days_that_have_a_snapshot() -> None:
    # gaps: days 0 and 5 only; keep_daily=2 keeps both, however far apart
    snaps = [auto(T0 + timedelta(hours=23)), auto(T0 + timedelta(days=5, hours=1))]
    assert to_keep(snaps, SnapshotPolicy(60, keep_daily=2)) == {s.id for s in snaps}
    assert to_prune(snaps, SnapshotPolicy(60, keep_daily=1)) == [snaps[0]]


_times = st.lists(
    st.integers(min_value=0, max_value=40 * 86400).map(lambda s: T0 + timedelta(seconds=s)),
    max_size=60,
    unique=True,
)


@settings(max_examples=200, deadline=None)
@given(
    autos=_times,
    manuals=_times,
    keep_last=st.integers(0, 20),
    keep_daily=st.integers(0, 20),
)
def test_retention_keeps_exactly_what_the_rules_say(
    autos: list[datetime], manuals: list[datetime], keep_last: int, keep_daily: int
) -> None:
    if keep_last == keep_daily == 0:
        keep_last = 1
    policy = SnapshotPolicy(1, keep_last, keep_daily)
    made = [auto(at) for at in autos]
    mine = [manual(at, f"m{i}") for i, at in enumerate(manuals)]
    snaps = made + mine
    pruned = {s.id for s in to_prune(snaps, policy)}
    kept = {s.id for s in made} - pruned

    assert not pruned & {s.id for s in mine}  # never a manual snapshot
    newest_first = sorted(made, key=lambda s: s.created, reverse=True)
    expected = {s.id for s in newest_first[:keep_last]}
    by_day: dict[object, SnapshotInfo] = {}
    for s in made:
        day = s.created.date()
        if day not in by_day or s.created > by_day[day].created:
            by_day[day] = s
    for day in sorted(by_day, reverse=True)[:keep_daily]:  # type: ignore[type-var]
        expected.add(by_day[day].id)
    assert kept == expected
    if made:
        assert newest_first[0].id in kept  # the newest always stays
    # pruning again what was kept prunes nothing more
    left = [s for s in snaps if s.id not in pruned]
    assert to_prune(left, policy) == []
