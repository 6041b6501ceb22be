"""What the health routes report: each dependency's health, and the volumes' capacity.

Two views of the same probes: ``checks`` (by name, for this daemon's own ``/health``) and
``connectivity`` (Backend.AI 26.09's list of checks, for ``/health``, ``/livez`` and ``/readyz``).
Liveness gates on the metadata store alone — without it no request can be served, and a restart
is what might bring it back; readiness gates on everything a request may need (the metadata
store, Redis when configured, every volume), so a load balancer stops sending work that would
fail, while the process stays up to recover on its own.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..core.types import FSUsage
from ..infra.redis import RedisLeases
from ..metadata.store import MetadataStore
from ..volumes.registry import VolumeRegistry

CHECK_TIMEOUT = 5.0


async def _check(probe: Awaitable[Any]) -> dict[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except TimeoutError:
        return {"status": "down", "detail": f"no answer within {CHECK_TIMEOUT:.0f}s"}
    except Exception as e:
        return {"status": "down", "detail": f"{type(e).__name__}: {e}"}
    return {"status": "ok"}


class Gating(enum.Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"


@dataclass(frozen=True, slots=True)
class Connectivity:
    """One dependency's state, as Backend.AI 26.09 lists it."""

    service_group: str
    component_id: str
    healthy: bool
    checked_at: datetime
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "service_group": self.service_group,
            "component_id": self.component_id,
            "is_healthy": self.healthy,
            "last_checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
            "error_message": self.error,
        }


class HealthService:
    def __init__(
        self, metadata: MetadataStore, volumes: VolumeRegistry, redis: RedisLeases | None
    ) -> None:
        self._metadata = metadata
        self._volumes = volumes
        self._redis = redis

    async def checks(self) -> dict[str, dict[str, str]]:
        """Each dependency by name: ``{"status": "ok"}`` or ``"down"`` with why."""
        checks = {"metadata": await _check(self._metadata.list_vfolders("\0health"))}
        if self._redis is not None:
            checks["redis"] = await _check(self._redis.ping())
        for name, volume in self._volumes.items():
            checks[f"volume:{name}"] = await _check(volume.get_fs_usage())
        return checks

    async def connectivity(self, gating: Gating = Gating.READINESS) -> list[Connectivity]:
        """The dependencies ``gating`` depends on, each probed now."""
        probes: list[tuple[str, str, Awaitable[Any]]] = [
            ("metadata", "store", self._metadata.list_vfolders("\0health"))
        ]
        if gating is Gating.READINESS:
            if self._redis is not None:
                probes.append(("redis", "leases", self._redis.ping()))
            probes += [("volume", n, v.get_fs_usage()) for n, v in self._volumes.items()]
        found = await asyncio.gather(*(_check(probe) for _, _, probe in probes))
        now = datetime.now(UTC)
        return [
            Connectivity(group, component, state["status"] == "ok", now, state.get("detail"))
            for (group, component, _), state in zip(probes, found, strict=True)
        ]

    async def volume_usages(self) -> dict[str, FSUsage]:
        """Capacity and use of every volume that answers (a scrape never fails for one)."""
        found = {}
        for name, volume in self._volumes.items():
            try:
                found[name] = await asyncio.wait_for(volume.get_fs_usage(), CHECK_TIMEOUT)
            except Exception:  # reported by /health
                continue
        return found
