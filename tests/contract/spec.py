"""What a backend module of the contract suite exports."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps

VolumeFactory = Callable[[Path, VolumeDeps], AbstractAsyncContextManager[AbstractVolume]]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    #: Yields a started volume on fresh storage under (or named after) the given tmp path.
    make_volume: VolumeFactory
    #: Seconds usage may lag behind writes (lazy recursive stats); the suite polls up to this.
    usage_settle_seconds: float = 0.0
