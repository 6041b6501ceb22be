"""nfs: a local directory standing in for an NFS mount (no NFS client or server here).

The mount check is off (``check-mount = false``); the attribute-cache retry keeps a short timeout
so the cases that expect "not found" stay quick.  Mount detection and the retry are unit-tested
in ``tests/backends/test_nfs.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_nfs import NfsVolume


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    options = {"check-mount": False, "attr-retry-timeout": 0.2, "quota-usage-ttl": 0}
    volume = NfsVolume("nfs", tmp_path / "nfs", options=options, deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()


SPEC = BackendSpec(name="nfs", make_volume=make)
