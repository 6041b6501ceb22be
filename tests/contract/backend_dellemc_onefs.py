"""dellemc-onefs: the OneFS Platform API emulator (tests/backends/onefs_emulator.py).

No cluster is reachable here: the production client talks to the in-repo emulator, which maps
the export (``/ifs/data/vfroot``) to a local folder standing in for the NFS mount and computes
each directory quota's usage from the bytes really stored below it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.emulators import serve
from backends.onefs_emulator import OneFSEmulator

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_dellemc_onefs import OneFSVolume

_EMULATORS: dict[int, OneFSEmulator] = {}


def volume_options(emulator: OneFSEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "ifs-path": emulator.ifs_path,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    root = tmp_path / "ifs"
    root.mkdir()
    emulator = OneFSEmulator(root)
    runner, endpoint = await serve(emulator)
    volume = OneFSVolume("isilon", root, options=volume_options(emulator, endpoint), deps=deps)
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
    emulator.usage_override[f"{emulator.ifs_path}/{qsid.pathname}"] = nbytes


SPEC = BackendSpec(name="dellemc-onefs", make_volume=make, report_usage=report_usage)
