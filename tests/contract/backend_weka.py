"""weka: the WEKA REST API v2 emulator (tests/backends/weka_emulator.py).

No WEKA cluster is reachable here: the production client talks to the in-repo emulator, whose
file system root is a local folder standing in for the WekaFS mount; directory quotas are keyed
by the real directories' inode numbers and count the bytes really stored below them.
"""

from __future__ import annotations

from backends.weka_emulator import WekaEmulator

from contract.emulated import emulated_spec
from storage_proxy_weka import WekaVolume


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


SPEC = emulated_spec(
    "weka",
    volume_cls=WekaVolume,
    emulator=WekaEmulator,
    options=volume_options,
    usage_key=lambda _, q: "/" + q.pathname,
    folder="wekafs",
)
