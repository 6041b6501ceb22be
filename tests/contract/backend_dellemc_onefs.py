"""dellemc-onefs: the OneFS Platform API emulator (tests/backends/onefs_emulator.py).

No cluster is reachable here: the production client talks to the in-repo emulator, which maps
the export (``/ifs/data/vfroot``) to a local folder standing in for the NFS mount and computes
each directory quota's usage from the bytes really stored below it.
"""

from __future__ import annotations

from backends.onefs_emulator import OneFSEmulator

from contract.emulated import emulated_spec
from storage_proxy_dellemc_onefs import OneFSVolume


def volume_options(emulator: OneFSEmulator, endpoint: str) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "user": emulator.user,
        "password": emulator.password,
        "ifs-path": emulator.ifs_path,
        "check-mount": False,
        "quota-usage-ttl": 0,
    }


SPEC = emulated_spec(
    "dellemc-onefs",
    volume_cls=OneFSVolume,
    emulator=OneFSEmulator,
    options=volume_options,
    usage_key=lambda e, q: f"{e.ifs_path}/{q.pathname}",
    folder="ifs",
    volume_name="isilon",
)
