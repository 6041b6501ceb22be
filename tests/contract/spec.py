"""What a backend module of the contract suite exports."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps

VolumeFactory = Callable[[Path, VolumeDeps], AbstractAsyncContextManager[AbstractVolume]]
#: Make the storage itself report ``nbytes`` used in a quota scope of a started volume.
ReportUsage = Callable[[AbstractVolume, QuotaScopeID, int], None]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    #: Yields a started volume on fresh storage under (or named after) the given tmp path.
    make_volume: VolumeFactory
    #: Seconds usage may lag behind writes (lazy recursive stats); the suite polls up to this.
    usage_settle_seconds: float = 0.0
    #: For backends whose scope usage comes from the storage's own accounting (a vendor API or
    #: tool): make it report a number, as if bytes had been written behind the proxy's back.
    #: The suite then checks that usage and refusals follow the storage, not the proxy's count.
    report_usage: ReportUsage | None = None
    #: The backend hands large reads over on a socket of its own (``open_raw_read``).
    raw_reads: bool = False


def all_specs() -> list[BackendSpec]:
    """Every ``contract/backend_<name>.py``'s ``SPEC``, by name."""
    specs = []
    here = Path(__file__).parent
    for mod in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if mod.name.startswith("backend_"):
            module = importlib.import_module(f"contract.{mod.name}")
            specs.append(module.SPEC)
    return specs
