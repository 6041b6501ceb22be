"""Backends found through entry points, and the live volumes of this daemon.

A backend is any class registered in the ``storage_proxy.volume_backends`` entry-point group —
the built-in ``vfs`` included — so a third-party distribution adds one without touching the core.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

import trafaret as t

from ..core.errors import PluginError, VolumeNotFound
from .abc import AbstractVolume, VolumeDeps

ENTRY_POINT_GROUP = "storage_proxy.volume_backends"
RegistryT = TypeVar("RegistryT", bound="VolumeRegistry")

log = logging.getLogger(__name__)


def available_backends() -> dict[str, Any]:
    """Backend name → entry point (not yet imported: a broken plugin only hurts its own volumes)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend(name: str) -> type[AbstractVolume]:
    eps = available_backends()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "(none installed)"
        raise PluginError(f"unknown volume backend {name!r}; available backends: {known}")
    ep = eps[name]
    try:
        cls = ep.load()
    except ImportError as e:
        raise PluginError(
            f"volume backend {name!r} ({ep.value}) cannot be imported: {e}. "
            f"Is the package that provides it installed with its dependencies?"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, AbstractVolume)):
        raise PluginError(f"entry point {name!r} ({ep.value}) is not an AbstractVolume subclass")
    return cls


class VolumeRegistry:
    """Name → started volume instance, built from ``[volume.*]`` at start-up."""

    def __init__(self) -> None:
        self._volumes: dict[str, AbstractVolume] = {}
        self._backends: dict[str, str] = {}

    @classmethod
    def instantiate(
        cls: type[RegistryT], volume_config: Mapping[str, Mapping[str, Any]], deps: VolumeDeps
    ) -> RegistryT:
        """Create (but not yet start) every configured volume; fails fast on a bad backend name."""
        reg = cls()
        for name, spec in volume_config.items():
            backend_cls = load_backend(spec["backend"])
            try:
                volume = backend_cls(
                    name,
                    Path(spec["path"]),
                    fsprefix=spec.get("fsprefix", "."),
                    options=spec.get("options") or {},
                    deps=deps,
                )
            except t.DataError as e:
                raise PluginError(f"volume {name!r}: invalid options: {e.as_dict()}") from None
            reg._volumes[name] = volume
            reg._backends[name] = spec["backend"]
        return reg

    async def start(self) -> None:
        started: list[AbstractVolume] = []
        try:
            for volume in self._volumes.values():
                await volume.init()
                started.append(volume)
                log.info(
                    "volume %s ready (backend %s, path %s)",
                    volume.name,
                    self._backends[volume.name],
                    volume.mount_path,
                )
        except BaseException:
            for volume in reversed(started):
                await volume.shutdown()
            raise

    async def stop(self) -> None:
        for volume in reversed(list(self._volumes.values())):
            try:
                await volume.shutdown()
            except Exception:
                log.exception("volume %s did not shut down cleanly", volume.name)

    def get(self, name: str) -> AbstractVolume:
        try:
            return self._volumes[name]
        except KeyError:
            raise VolumeNotFound(f"no volume named {name!r}") from None

    def backend_of(self, name: str) -> str:
        """The backend of a configured volume; "" for a name no volume has."""
        return self._backends.get(name, "")

    def items(self) -> list[tuple[str, AbstractVolume]]:
        return list(self._volumes.items())
