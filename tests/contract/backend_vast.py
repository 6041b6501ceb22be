"""vast: the VAST VMS REST emulator (tests/backends/vast_emulator.py).

No VAST cluster is reachable here: the production client talks to the in-repo emulator, which
maps the exported path (``/vfroot``) to a local folder standing in for the NFS mount and computes
each quota's usage from the bytes really stored below its path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.emulators import serve
from backends.vast_emulator import VastEmulator

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_vast import VastVolume

_EMULATORS: dict[int, VastEmulator] = {}


def volume_options(emulator: VastEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "vast-path": emulator.vast_path,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    root = tmp_path / "vast"
    root.mkdir()
    emulator = VastEmulator(root)
    runner, endpoint = await serve(emulator)
    volume = VastVolume("vast", root, options=volume_options(emulator, endpoint), deps=deps)
    try:
        await volume.init()
        _EMULATORS[id(volume)] = emulator
        try:
            yield volume
        finally:
            _EMULATORS.pop(id(volume), None)
            await volume.shutdown()
    finally:
        await runner.cleanup()


def report_usage(volume: AbstractVolume, qsid: QuotaScopeID, nbytes: int) -> None:
    emulator = _EMULATORS[id(volume)]
    emulator.usage_override[f"{emulator.vast_path}/{qsid.pathname}"] = nbytes


SPEC = BackendSpec(name="vast", make_volume=make, report_usage=report_usage)
