"""weka: the WEKA REST API v2 emulator (tests/backends/weka_emulator.py).

No WEKA cluster is reachable here: the production client talks to the in-repo emulator, whose
file system root is a local folder standing in for the WekaFS mount; directory quotas are keyed
by the real directories' inode numbers and count the bytes really stored below them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.emulators import serve
from backends.weka_emulator import WekaEmulator

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_weka import WekaVolume

_EMULATORS: dict[int, WekaEmulator] = {}


def volume_options(emulator: WekaEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "organization": emulator.org,
        "fs-name": emulator.fs_name,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    root = tmp_path / "wekafs"
    root.mkdir()
    emulator = WekaEmulator(root)
    runner, endpoint = await serve(emulator)
    volume = WekaVolume("weka", root, options=volume_options(emulator, endpoint), deps=deps)
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
    _EMULATORS[id(volume)].usage_override["/" + qsid.pathname] = nbytes


SPEC = BackendSpec(name="weka", make_volume=make, report_usage=report_usage)
