"""netapp: the ONTAP REST emulator (tests/backends/ontap_emulator.py) + a local directory.

No filer is reachable here: quotas go through the production ONTAP client to the in-repo
emulator, which creates qtrees as directories of a local folder standing in for the NFS mount
(``check-mount = false``) and derives quota reports from the bytes really stored there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.ontap_emulator import Emulator, start

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_netapp import NetAppVolume


def volume_options(emulator: Emulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "svm": emulator.svm,
        "volume-name": emulator.volume,
        "check-mount": False,
        "quota-usage-ttl": 0,
        "job-poll-interval": 0.01,
        "job-timeout": 5,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    emulator = Emulator(nfs)
    runner, endpoint = await start(emulator)
    volume = NetAppVolume("netapp", nfs, options=volume_options(emulator, endpoint), deps=deps)
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


_EMULATORS: dict[int, Emulator] = {}


def report_usage(volume: AbstractVolume, qsid: QuotaScopeID, nbytes: int) -> None:
    _EMULATORS[id(volume)].usage_override[qsid.pathname] = nbytes


SPEC = BackendSpec(name="netapp", make_volume=make, report_usage=report_usage)
