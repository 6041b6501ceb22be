"""vast: the VAST VMS REST emulator (tests/backends/vast_emulator.py).

No VAST cluster is reachable here: the production client talks to the in-repo emulator, which
maps the exported path (``/vfroot``) to a local folder standing in for the NFS mount and computes
each quota's usage from the bytes really stored below its path.
"""

from __future__ import annotations

from backends.vast_emulator import VastEmulator

from contract.emulated import emulated_spec
from storage_proxy_vast import VastVolume


def volume_options(emulator: VastEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "vast-path": emulator.vast_path,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


SPEC = emulated_spec(
    "vast",
    volume_cls=VastVolume,
    emulator=VastEmulator,
    options=volume_options,
    usage_key=lambda e, q: f"{e.vast_path}/{q.pathname}",
    folder="vast",
)
