"""Live I/O figures of a local volume from the kernel's counters of its block device.

Backend.AI's ``GET /volume/performance-metric`` answers ``FSPerfMetric``: read and write
operations per second (``iops_*``), bytes per second (``io_bytes_*``) and the mean time one
operation took in microseconds (``io_usec_*``).  Its vendor backends read them from the
appliance; a local file system has them in the block layer: ``/sys/dev/block/<major>:<minor>/stat``
of the device (or partition) backing the mount — the fields of ``/proc/diskstats`` after the
name (Documentation/block/stat.rst: reads completed, reads merged, sectors read, milliseconds
reading, the same four for writes, …; a sector is 512 bytes whatever the device's own size).
The figures are the difference of two readings a short window apart, so they describe the last
window, not the time since boot.

A file system on no block device (NFS, CephFS, tmpfs, overlay: an anonymous device, major 0)
has no such counters: :class:`NoBlockDevice`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
#: Seconds between the two readings of one answer.
WINDOW = 0.5
SYS_DEV_BLOCK = Path("/sys/dev/block")
PROC_DISKSTATS = Path("/proc/diskstats")


class NoBlockDevice(Exception):
    """The path's file system is on no block device this host counts I/O for."""


@dataclass(frozen=True, slots=True)
class DiskCounters:
    """The cumulative counters of one block device (since boot)."""

    read_ios: int
    read_sectors: int
    read_ms: int
    write_ios: int
    write_sectors: int
    write_ms: int

    @classmethod
    def parse(cls, fields: list[str]) -> DiskCounters:
        """From the fields of a ``stat`` file (or of a ``/proc/diskstats`` line after the name)."""
        if len(fields) < 8:
            raise ValueError(f"a block device stat has 8 fields or more, not {len(fields)}")
        n = [int(f) for f in fields[:8]]
        return cls(n[0], n[2], n[3], n[4], n[6], n[7])


@dataclass(frozen=True, slots=True)
class PerfMetric:
    """Backend.AI's ``FSPerfMetric``: per-second rates over one window, mean latencies."""

    iops_read: int
    iops_write: int
    io_bytes_read: int
    io_bytes_write: int
    io_usec_read: float
    io_usec_write: float

    @classmethod
    def between(cls, before: DiskCounters, after: DiskCounters, seconds: float) -> PerfMetric:
        def rate(a: int, b: int) -> int:
            return round(max(b - a, 0) / seconds)

        def latency(ios_a: int, ios_b: int, ms_a: int, ms_b: int) -> float:
            ios = ios_b - ios_a
            return max(ms_b - ms_a, 0) * 1000 / ios if ios > 0 else 0.0

        return cls(
            iops_read=rate(before.read_ios, after.read_ios),
            iops_write=rate(before.write_ios, after.write_ios),
            io_bytes_read=rate(before.read_sectors, after.read_sectors) * SECTOR,
            io_bytes_write=rate(before.write_sectors, after.write_sectors) * SECTOR,
            io_usec_read=latency(before.read_ios, after.read_ios, before.read_ms, after.read_ms),
            io_usec_write=latency(
                before.write_ios, after.write_ios, before.write_ms, after.write_ms
            ),
        )


def device_counters(
    path: Path, sys_dev_block: Path = SYS_DEV_BLOCK, proc_diskstats: Path = PROC_DISKSTATS
) -> Callable[[], DiskCounters]:
    """A reader of the counters of the block device ``path`` lives on (blocking: call it off
    the event loop)."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        raise NoBlockDevice(f"{path} is on a file system with no block device ({major}:{minor})")
    stat_file = sys_dev_block / f"{major}:{minor}" / "stat"
    if stat_file.is_file():
        return lambda: DiskCounters.parse(stat_file.read_text().split())

    def from_diskstats() -> DiskCounters:
        for line in proc_diskstats.read_text().splitlines():
            fields = line.split()
            if fields[:2] == [str(major), str(minor)]:
                return DiskCounters.parse(fields[3:])
        raise NoBlockDevice(f"no counters for the block device {major}:{minor} of {path}")

    return from_diskstats


async def sample(read: Callable[[], DiskCounters], window: float = WINDOW) -> PerfMetric:
    """Two readings ``window`` seconds apart (each in a thread), and the figures between."""
    loop = asyncio.get_running_loop()
    before = await asyncio.to_thread(read)
    started = loop.time()
    await asyncio.sleep(window)
    after = await asyncio.to_thread(read)
    return PerfMetric.between(before, after, max(loop.time() - started, 1e-3))
