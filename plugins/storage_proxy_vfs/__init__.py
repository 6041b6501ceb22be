"""The ``vfs`` backend: a plain POSIX directory, quotas enforced by the proxy.

Registered through the ``storage_proxy.volume_backends`` entry point like any third-party backend;
everything it does is inherited from the POSIX base (performance metrics: the counters of the
block device below the directory, ``volumes.blockstats``).
"""

from __future__ import annotations

import trafaret as t

from storage_proxy.volumes.posix import BasePosixVolume


class VfsVolume(BasePosixVolume):
    backend_name = "vfs"
    inline_reads = True  # a local file system: small files are opened on the event loop
    block_device_metrics = True  # its I/O figures are those of the disk below it
    options_schema = t.Dict(
        {
            # Seconds a scanned quota-scope usage is trusted before the next write re-scans it.
            t.Key("quota-usage-ttl", default=30.0): t.ToFloat(gte=0),
        }
    )


__all__ = ["VfsVolume"]
