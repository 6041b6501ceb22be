"""A local volume's I/O figures from its block device's counters (``volumes.blockstats``), read
from a fake ``/sys/dev/block`` and ``/proc/diskstats``; the real reading is in
test_bai_26_routes (``/volume/performance-metric`` on vfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage_proxy.volumes.blockstats import (
    SECTOR,
    DiskCounters,
    NoBlockDevice,
    PerfMetric,
    device_counters,
    sample,
)

#: /sys/block/*/stat: reads, merged, sectors, ms; writes, merged, sectors, ms; in flight, ...
STAT = "  100  5  8000  40   200  7  16000  600   0  300  640  0 0 0 0 0 0\n"


def test_counters_are_the_fields_of_a_stat_file() -> None:
    assert DiskCounters.parse(STAT.split()) == DiskCounters(100, 8000, 40, 200, 16000, 600)
    with pytest.raises(ValueError):
        DiskCounters.parse(["1", "2", "3"])


def test_figures_are_rates_over_the_window_and_mean_latencies() -> None:
    before = DiskCounters(100, 8000, 40, 200, 16000, 600)
    after = DiskCounters(150, 8400, 90, 200, 16000, 600)  # 50 reads of 4 sectors, 1 ms each
    metric = PerfMetric.between(before, after, 0.5)
    assert metric == PerfMetric(
        iops_read=100,
        iops_write=0,
        io_bytes_read=800 * SECTOR,
        io_bytes_write=0,
        io_usec_read=1000.0,
        io_usec_write=0.0,
    )
    # counters that went back (a device reset) are no negative figures
    assert PerfMetric.between(after, before, 1.0).iops_read == 0


def _dev(path: Path) -> str:
    dev = os.stat(path).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def test_the_device_below_the_path_is_read_from_sys_dev_block(tmp_path: Path) -> None:
    sys_block = tmp_path / "sys"
    (sys_block / _dev(tmp_path)).mkdir(parents=True)
    (sys_block / _dev(tmp_path) / "stat").write_text(STAT)
    read = device_counters(tmp_path, sys_block, tmp_path / "none")
    assert read().read_ios == 100
    (sys_block / _dev(tmp_path) / "stat").write_text(STAT.replace(" 100 ", " 101 ", 1))
    assert read().read_ios == 101  # each call reads anew


def test_proc_diskstats_when_sys_has_no_entry(tmp_path: Path) -> None:
    major, minor = _dev(tmp_path).split(":")
    diskstats = tmp_path / "diskstats"
    diskstats.write_text(f"   7  0 loop0 1 0 2 0 0 0 0 0 0 0 0\n {major} {minor} vdx {STAT}")
    read = device_counters(tmp_path, tmp_path / "nosys", diskstats)
    assert read() == DiskCounters(100, 8000, 40, 200, 16000, 600)
    diskstats.write_text("   7  0 loop0 1 0 2 0 0 0 0 0 0 0 0\n")
    with pytest.raises(NoBlockDevice):
        read()


def test_a_file_system_on_no_block_device_has_no_counters() -> None:
    with pytest.raises(NoBlockDevice):
        device_counters(Path("/proc"))  # procfs: an anonymous device (major 0)


async def test_sample_reads_twice_a_window_apart() -> None:
    readings = iter([DiskCounters(0, 0, 0, 10, 80, 10), DiskCounters(0, 0, 0, 20, 160, 30)])
    metric = await sample(lambda: next(readings), window=0.05)
    # 10 writes of 8 sectors in 0.05 s or more (a busy machine: more), 2 ms each
    assert 0 < metric.iops_write <= 200 and metric.io_usec_write == 2000.0
    per_write = metric.io_bytes_write / metric.iops_write
    assert abs(per_write - 8 * SECTOR) <= 0.1 * 8 * SECTOR
