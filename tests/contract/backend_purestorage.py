"""purestorage: the FlashBlade REST emulator (tests/backends/purestorage_emulator.py).

No array is reachable here: the production client talks to the in-repo emulator, which keeps
each quota scope's file system as a directory of a local folder standing in for the volume path
(where the automounter shows the file systems, at ``<path>/<scope-hex>``) and reports usage from
the bytes really stored there.
"""

from __future__ import annotations

from pathlib import Path

from backends.purestorage_emulator import FlashBladeEmulator

from contract.emulated import emulated_spec
from storage_proxy_purestorage import PureStorageVolume

PREFIX = "sp-"


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


SPEC = emulated_spec(
    "purestorage",
    volume_cls=PureStorageVolume,
    emulator=emulator_for,
    options=volume_options,
    usage_key=lambda _, q: PREFIX + q.pathname,
    folder="fb",
    volume_name="fb",
)
