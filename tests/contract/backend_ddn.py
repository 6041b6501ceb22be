"""ddn: a local folder standing in for the Lustre mount, and the fake ``lfs``.

No Lustre filesystem can run here: the production backend runs ``lfs`` through the real command
runner, and ``tests/backends/fake_lfs.py`` answers in lfs's documented output formats, tagging
directories with project ids and counting the bytes really stored below them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from backends.fake_lfs import FakeLfs

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_ddn import DdnVolume

_FAKES: dict[int, FakeLfs] = {}


def volume_options(fake: FakeLfs) -> dict[str, object]:
    return {
        "lfs-binary": str(fake.binary),
        "check-mount": False,
        "quota-usage-ttl": 0,
        "command-timeout": 10,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    root = tmp_path / "lustre"
    root.mkdir()
    fake = FakeLfs(tmp_path / "fake-lfs")
    volume = DdnVolume("exa", root, options=volume_options(fake), deps=deps)
    await volume.init()
    _FAKES[id(volume)] = fake
    try:
        yield volume
    finally:
        _FAKES.pop(id(volume), None)
        await volume.shutdown()


def report_usage(volume: AbstractVolume, qsid: QuotaScopeID, nbytes: int) -> None:
    assert isinstance(volume, DdnVolume)
    registry = volume.quota_api.registry  # type: ignore[attr-defined]
    prid = next(
        int(line.split(":")[1])
        for line in registry.projid_file.read_text().splitlines()
        if line.startswith(qsid.pathname + ":")
    )
    _FAKES[id(volume)].report_usage(prid, nbytes)


SPEC = BackendSpec(name="ddn", make_volume=make, report_usage=report_usage)
