"""vfs: a plain POSIX directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_vfs import VfsVolume


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    volume = VfsVolume("vfs", tmp_path / "vfs", options={"quota-usage-ttl": 0}, deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()


SPEC = BackendSpec(name="vfs", make_volume=make)
