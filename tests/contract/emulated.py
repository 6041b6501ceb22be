"""Contract backends whose storage API is an in-repo emulator of a vendor's wire protocol.

Each ``backend_<vendor>.py`` names only what differs (the emulator, the volume class, its
options, where the emulator keeps a scope's usage); starting the emulator on a free port,
starting and stopping the volume, and making the storage report a usage live here once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from backends.emulators import serve

from contract.spec import BackendSpec
from storage_proxy.core.types import QuotaScopeID
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps

Serve = Callable[[Any], Awaitable[tuple[web.AppRunner, str]]]


def emulated_spec(
    name: str,
    *,
    volume_cls: Callable[..., AbstractVolume],
    emulator: Callable[[Path], Any],
    options: Callable[[Any, str], dict[str, object]],
    usage_key: Callable[[Any, QuotaScopeID], str],
    folder: str,
    volume_name: str | None = None,
    serve_emulator: Serve = serve,
) -> BackendSpec:
    """The contract suite's spec of a volume whose vendor API is ``emulator`` over ``folder``.

    ``usage_key`` is the key of the emulator's ``usage_override`` that makes it report a number
    for a scope, as the storage would after writes behind the proxy's back.
    """
    started: dict[int, Any] = {}

    @asynccontextmanager
    async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
        root = tmp_path / folder
        root.mkdir()
        emu = emulator(root)
        runner, endpoint = await serve_emulator(emu)
        try:
            opts = options(emu, endpoint)
            volume = volume_cls(volume_name or name, root, options=opts, deps=deps)
            await volume.init()
            started[id(volume)] = emu
            try:
                yield volume
            finally:
                started.pop(id(volume), None)
                await volume.shutdown()
        finally:
            await runner.cleanup()

    def report_usage(volume: AbstractVolume, qsid: QuotaScopeID, nbytes: int) -> None:
        emu = started[id(volume)]
        emu.usage_override[usage_key(emu, qsid)] = nbytes

    return BackendSpec(name=name, make_volume=make, report_usage=report_usage)
