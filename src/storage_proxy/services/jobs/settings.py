"""The ``[jobs]`` section, read once into a typed, frozen object (seconds as floats)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class JobSettings:
    usage_scan_interval: float = 300.0
    orphan_scan_interval: float = 3600.0
    trash_purge_interval: float = 600.0
    trash_grace: float = 86400.0
    retention_interval: float = 3600.0
    retention_dry_run: bool = False
    scrub_interval: float = 7 * 86400.0
    snapshot_policy_interval: float = 60.0
    lease_ttl: float = 60.0
    bgtask_heartbeat: float = 5.0
    bgtask_stale_after: float = 60.0
    #: volume name → days after which files are deleted (a vfolder's own period wins)
    retention: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> JobSettings:
        """From the validated section (durations are ``timedelta``s there)."""

        def seconds(key: str) -> float:
            value = section[key]
            return value.total_seconds() if isinstance(value, timedelta) else float(value)

        return cls(
            usage_scan_interval=seconds("usage-scan-interval"),
            orphan_scan_interval=seconds("orphan-scan-interval"),
            trash_purge_interval=seconds("trash-purge-interval"),
            trash_grace=seconds("trash-grace"),
            retention_interval=seconds("retention-interval"),
            retention_dry_run=bool(section["retention-dry-run"]),
            scrub_interval=seconds("scrub-interval"),
            snapshot_policy_interval=seconds("snapshot-policies-interval"),
            lease_ttl=seconds("lease-ttl"),
            bgtask_heartbeat=seconds("bgtask-heartbeat"),
            bgtask_stale_after=seconds("bgtask-stale-after"),
            retention=dict(section["retention"]),
        )
