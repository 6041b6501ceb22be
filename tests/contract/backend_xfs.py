"""xfs: a real loop-mounted XFS image, in proxy-quota fallback mode.

This machine's kernel has no quota support (see ``shared/infra/README.md``), so the image is
mounted without ``prjquota`` and the volume runs with ``fallback-to-proxy-quota = true``: the
start-up check really runs against the mount, finds project quotas missing and falls back.
Native limits and report parsing are tested in ``tests/backends/test_xfs.py`` through the
command-runner seam with captured ``xfs_quota`` outputs.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_xfs import XfsVolume

IMAGE_SIZE = 300 << 20  # the smallest XFS mkfs.xfs accepts; the image file is sparse


def ensure_xfsprogs() -> None:
    """mkfs.xfs and xfs_quota come with ``xfsprogs``; install it (apt) when missing."""
    if shutil.which("mkfs.xfs") and shutil.which("xfs_quota"):
        return
    if not shutil.which("apt-get"):
        pytest.fail("xfsprogs is not installed and apt-get is not available (scripts/ci-apt.sh)")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "xfsprogs"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            pytest.fail("xfsprogs could not be installed with apt-get")


@contextmanager
def loop_mounted_xfs(workdir: Path) -> Iterator[Path]:
    """A fresh XFS filesystem: sparse image, ``mkfs.xfs``, ``mount -o loop``; removed after."""
    ensure_xfsprogs()
    image, mnt = workdir / "xfs.img", workdir / "xfs-mnt"
    mnt.mkdir(parents=True)
    with open(image, "wb") as f:
        f.truncate(IMAGE_SIZE)
    subprocess.run(["mkfs.xfs", "-q", str(image)], check=True, capture_output=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        image.unlink()
        pytest.fail(f"cannot loop-mount an XFS image here: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        image.unlink(missing_ok=True)


def fallback_options(workdir: Path) -> dict[str, object]:
    return {
        "quota-usage-ttl": 0,
        "fallback-to-proxy-quota": True,
        "projects-file": str(workdir / "projects"),
        "projid-file": str(workdir / "projid"),
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    with loop_mounted_xfs(tmp_path) as mnt:
        volume = XfsVolume("xfs", mnt / "vol", options=fallback_options(tmp_path), deps=deps)
        await volume.init()
        try:
            yield volume
        finally:
            await volume.shutdown()


SPEC = BackendSpec(name="xfs", make_volume=make)
