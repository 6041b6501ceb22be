"""Snapshot policies: when a vfolder is snapshotted on its own, and which of those snapshots stay.

A policy takes a snapshot every ``every`` seconds -- one per *slot*, the slots being the
multiples of ``every`` since the epoch, so that whichever worker or node comes first takes it and
any other sees it already there.  A policy's snapshot is named ``auto-<slot start>``
(``auto-20260102T030000Z``), the name the slot alone decides; no manual snapshot can have such
a name (the ``auto-`` prefix is refused to callers), so the policy never prunes what a user took.

What stays (the union of both rules): the ``keep_last`` newest policy snapshots, and for each of
the ``keep_daily`` newest days (UTC) that have one, the newest policy snapshot of that day --
"newest" by the slot in the name.  The rest of the policy's snapshots are pruned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidParameter
from .snapshots import POLICY_PREFIX, SnapshotInfo

#: At most this many snapshots kept by either rule (a day has 86,400 one-second slots).
MAX_KEEP = 1000
#: The shortest and the longest ``every``, in seconds.
MIN_EVERY, MAX_EVERY = 1, 366 * 86400
_POLICY_NAME = re.compile(rf"^{POLICY_PREFIX}(\d{{8}}T\d{{6}}Z)$")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    every: int  # seconds, a whole number
    keep_last: int = 0
    keep_daily: int = 0

    def __post_init__(self) -> None:
        if not MIN_EVERY <= self.every <= MAX_EVERY:
            raise InvalidParameter(
                f"every must be between {MIN_EVERY}s and {MAX_EVERY // 86400} days"
            )
        for name, value in (("keep_last", self.keep_last), ("keep_daily", self.keep_daily)):
            if not 0 <= value <= MAX_KEEP:
                raise InvalidParameter(f"{name} must be between 0 and {MAX_KEEP}")
        if self.keep_last == 0 and self.keep_daily == 0:
            raise InvalidParameter("a policy keeps something: keep_last or keep_daily above 0")

    @classmethod
    def from_seconds(cls, every: float, keep_last: int = 0, keep_daily: int = 0) -> SnapshotPolicy:
        if not math.isfinite(every) or every != int(every):
            raise InvalidParameter(f"every must be a whole number of seconds: {every!r}")
        return cls(int(every), keep_last, keep_daily)

    def to_json(self) -> dict[str, Any]:
        return {"every": self.every, "keep_last": self.keep_last, "keep_daily": self.keep_daily}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotPolicy:
        """As stored (``to_json``); a stored value is trusted to have been checked."""
        return cls(int(data["every"]), int(data["keep_last"]), int(data["keep_daily"]))

    def slot_start(self, now: float) -> int:
        """The start of the slot ``now`` falls in (seconds since the epoch)."""
        return int(now // self.every) * self.every


def slot_name(slot_start: int) -> str:
    """The name of the policy snapshot of the slot starting at ``slot_start``."""
    return POLICY_PREFIX + datetime.fromtimestamp(slot_start, UTC).strftime(_STAMP)


def is_policy_snapshot(snapshot_id: str) -> bool:
    return _POLICY_NAME.match(snapshot_id) is not None


def slot_of(snapshot_id: str) -> datetime | None:
    """When the policy snapshot ``snapshot_id`` is for (its slot's start); None: not one."""
    m = _POLICY_NAME.match(snapshot_id)
    return None if m is None else datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC)


def check_manual_name(snapshot_id: str) -> str:
    """A caller's snapshot name: the policy's prefix is not theirs to take."""
    if snapshot_id.startswith(POLICY_PREFIX):
        raise InvalidParameter(f"names starting with {POLICY_PREFIX!r} are for policy snapshots")
    return snapshot_id


def to_keep(snapshots: Iterable[SnapshotInfo], policy: SnapshotPolicy) -> set[str]:
    """The ids of the policy snapshots the rules keep (manual ones are not considered).  A
    policy snapshot's time is its slot's, from its name (whatever clock the storage keeps)."""
    made = sorted(
        ((at, s.id) for s in snapshots if (at := slot_of(s.id)) is not None), reverse=True
    )
    keep = {sid for _, sid in made[: policy.keep_last]}
    days: set[object] = set()
    for at, sid in made:  # newest first: the first one seen of a day is that day's newest
        if at.date() in days:
            continue
        if len(days) >= policy.keep_daily:
            break
        days.add(at.date())
        keep.add(sid)
    return keep


def to_prune(snapshots: Sequence[SnapshotInfo], policy: SnapshotPolicy) -> list[SnapshotInfo]:
    """The policy snapshots the rules do not keep, oldest first; never a manual one."""
    keep = to_keep(snapshots, policy)
    pruned = [s for s in snapshots if is_policy_snapshot(s.id) and s.id not in keep]
    return sorted(pruned, key=lambda s: s.id)  # by slot: the names sort as their times
