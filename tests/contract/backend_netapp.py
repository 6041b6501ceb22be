"""netapp: the ONTAP REST emulator (tests/backends/ontap_emulator.py) + a local directory.

No filer is reachable here: quotas go through the production ONTAP client to the in-repo
emulator, which creates qtrees as directories of a local folder standing in for the NFS mount
(``check-mount = false``) and derives quota reports from the bytes really stored there.
"""

from __future__ import annotations

from backends.ontap_emulator import Emulator, start

from contract.emulated import emulated_spec
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


SPEC = emulated_spec(
    "netapp",
    volume_cls=NetAppVolume,
    emulator=Emulator,
    options=volume_options,
    usage_key=lambda _, q: q.pathname,
    folder="nfs",
    serve_emulator=start,
)
