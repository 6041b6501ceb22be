"""Apply a new ``[volume.*]`` set to a running daemon: start added volumes, stop removed ones.

Why a subclass: ``VolumeRegistry`` is built once at start-up and has no add/remove; a shared
config change in etcd must reach a running daemon without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .abc import VolumeDeps
from .registry import VolumeRegistry

log = logging.getLogger(__name__)


class DynamicVolumeRegistry(VolumeRegistry):
    """A :class:`VolumeRegistry` whose volume set can change while the daemon runs."""

    async def add(self, name: str, spec: Mapping[str, Any], deps: VolumeDeps) -> None:
        """Create and start one volume; nothing is registered if its ``init()`` fails."""
        if name in dict(self.items()):
            raise ValueError(f"volume {name!r} already exists")
        one = VolumeRegistry.instantiate({name: spec}, deps)
        await one.start()
        self._volumes[name] = one.get(name)
        self._backends[name] = one.backend_of(name)

    async def remove(self, name: str) -> None:
        """Unregister first (new requests get 404), then shut the volume down."""
        volume = self._volumes.pop(name)
        self._backends.pop(name, None)
        await volume.shutdown()


@dataclass
class VolumeChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name → error text


def _spec(vol: Mapping[str, Any]) -> dict[str, Any]:
    return {k: vol.get(k) for k in ("backend", "path", "fsprefix", "options")}


async def apply_volume_changes(
    registry: DynamicVolumeRegistry,
    old_cfg: Mapping[str, Any],
    new_cfg: Mapping[str, Any],
    deps: VolumeDeps,
) -> VolumeChanges:
    """Diff ``[volume]`` of two validated configs; a changed volume is stopped and restarted.

    One bad volume does not stop the others: its error is reported in ``failed``.
    """
    old = {n: _spec(v) for n, v in (old_cfg.get("volume") or {}).items()}
    new = {n: _spec(v) for n, v in (new_cfg.get("volume") or {}).items()}
    live = {n for n, _ in registry.items()}
    result = VolumeChanges()
    for name in sorted(live):
        if name not in new or (name in old and old[name] != new[name]):
            try:
                await registry.remove(name)
                result.removed.append(name)
            except Exception as e:
                log.exception("volume %s did not stop cleanly", name)
                result.failed[name] = str(e)
    live = {n for n, _ in registry.items()}
    for name in sorted(set(new) - live):
        try:
            await registry.add(name, new[name], deps)
            result.added.append(name)
            log.info("volume %s added from shared config", name)
        except Exception as e:
            log.error("volume %s from shared config could not start: %s", name, e)
            result.failed[name] = str(e)
    return result
