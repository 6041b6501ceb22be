"""What the internal listener reports: each dependency's health, and the volumes' capacity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
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

    async def volume_usages(self) -> dict[str, FSUsage]:
        """Capacity and use of every volume that answers (a scrape never fails for one)."""
        found = {}
        for name, volume in self._volumes.items():
            try:
                found[name] = await asyncio.wait_for(volume.get_fs_usage(), CHECK_TIMEOUT)
            except Exception:  # reported by /health
                continue
        return found
