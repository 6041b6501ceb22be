"""purestorage: the FlashBlade REST emulator (tests/backends/purestorage_emulator.py).

No array is reachable here: the production client talks to the in-repo emulator, which keeps
each quota scope's file system as a directory of a local folder standing in for the volume path
(where the automounter shows the file systems, at ``<path>/<scope-hex>``) and reports usage from
the bytes really stored there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.emulators import serve
from backends.purestorage_emulator import FlashBladeEmulator

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_purestorage import PureStorageVolume

PREFIX = "sp-"
_EMULATORS: dict[int, FlashBladeEmulator] = {}


def emulator_for(root: Path) -> FlashBladeEmulator:
    """File system ``sp-<hex>`` appears at ``<root>/<hex>``, as the automounter map says."""
    return FlashBladeEmulator(root, mount_of=lambda name: root / name.removeprefix(PREFIX))


def volume_options(emulator: FlashBladeEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "api-token": emulator.api_token,
        "fs-prefix": PREFIX,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    root = tmp_path / "fb"
    root.mkdir()
    emulator = emulator_for(root)
    runner, endpoint = await serve(emulator)
    volume = PureStorageVolume("fb", root, options=volume_options(emulator, endpoint), deps=deps)
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
    _EMULATORS[id(volume)].usage_override[PREFIX + qsid.pathname] = nbytes


SPEC = BackendSpec(name="purestorage", make_volume=make, report_usage=report_usage)
