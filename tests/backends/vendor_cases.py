"""The four REST vendor backends described once, for the tests every one of them must pass.

Each case names its emulator, its volume class, the options the contract suite starts it with
(``contract/backend_<name>.py``), the credentials that are wrong, and every secret a log line or
error message must never show (configured credentials and the session tokens the emulator
issued).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.emulators import EmulatorBase, serve
from backends.onefs_emulator import OneFSEmulator
from backends.vast_emulator import VastEmulator
from backends.weka_emulator import WekaEmulator

from contract import backend_dellemc_onefs, backend_purestorage, backend_vast, backend_weka
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_dellemc_onefs import OneFSVolume
from storage_proxy_purestorage import PureStorageVolume
from storage_proxy_vast import VastVolume
from storage_proxy_weka import WekaVolume


@dataclass(frozen=True)
class VendorCase:
    name: str
    volume_cls: type[VendorQuotaVolume]
    emulator: Callable[[Path], Any]
    options: Callable[[Any, str], dict[str, object]]
    wrong_credentials: dict[str, object]
    secrets: Callable[[Any], list[str]]
    #: Make the emulator answer listings in pages of this many items.
    set_page_size: Callable[[Any, int], None]

    @asynccontextmanager
    async def started(
        self,
        root: Path,
        deps: VolumeDeps,
        *,
        ssl_context: Any = None,
        **overrides: object,
    ) -> AsyncIterator[tuple[Any, VendorQuotaVolume | None, str]]:
        """``(emulator, volume or None, endpoint)``; the volume is not initialized yet."""
        root.mkdir(parents=True, exist_ok=True)
        emulator: EmulatorBase = self.emulator(root)
        runner, endpoint = await serve(emulator, ssl_context)
        try:
            options = {**self.options(emulator, endpoint), **overrides}
            yield emulator, self.volume_cls(self.name, root, options=options, deps=deps), endpoint
        finally:
            await runner.cleanup()

    @asynccontextmanager
    async def running(
        self, root: Path, deps: VolumeDeps, **overrides: object
    ) -> AsyncIterator[tuple[Any, Any]]:
        """``(emulator, started volume)``; shut down and stopped afterwards."""
        async with self.started(root, deps, **overrides) as (emulator, volume, _):
            assert volume is not None
            await volume.init()
            try:
                yield emulator, volume
            finally:
                await volume.shutdown()


def case(name: str) -> VendorCase:
    return next(c for c in CASES if c.name == name)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _page(attr: str) -> Callable[[Any, int], None]:
    def set_size(emulator: Any, size: int) -> None:
        setattr(emulator, attr, size)

    return set_size


CASES = [
    VendorCase(
        name="purestorage",
        volume_cls=PureStorageVolume,
        emulator=backend_purestorage.emulator_for,
        options=backend_purestorage.volume_options,
        wrong_credentials={"api-token": "T-wrong-token-0000"},
        secrets=lambda e: [e.api_token, *e.sessions],
        set_page_size=_page("max_page"),
    ),
    VendorCase(
        name="dellemc-onefs",
        volume_cls=OneFSVolume,
        emulator=OneFSEmulator,
        options=backend_dellemc_onefs.volume_options,
        wrong_credentials={"password": "not-the-password"},
        secrets=lambda e: [e.password, _basic(e.user, e.password)],
        set_page_size=_page("max_page"),
    ),
    VendorCase(
        name="weka",
        volume_cls=WekaVolume,
        emulator=WekaEmulator,
        options=backend_weka.volume_options,
        wrong_credentials={"password": "not-the-password"},
        secrets=lambda e: [e.password, *e.access, *e.refresh],
        set_page_size=_page("page_size"),
    ),
    VendorCase(
        name="vast",
        volume_cls=VastVolume,
        emulator=VastEmulator,
        options=backend_vast.volume_options,
        wrong_credentials={"password": "not-the-password"},
        secrets=lambda e: [e.password, *e.access, *e.refresh, *e.expired],
        set_page_size=_page("max_page"),
    ),
]
