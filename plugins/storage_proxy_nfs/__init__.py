"""The ``nfs`` backend: a directory tree on an NFS mount, quotas enforced by the proxy.

What differs from a local directory, and so what this module adds to the POSIX base:

* start-up checks that the path really is on an NFS mount (not the empty mount point);
* attribute caching: a lookup may miss a file or vfolder created or renamed moments ago (by this
  host or another), so existence checks retry briefly, revalidating the parent directory;
* xattrs are never used (many servers and NFSv3 have none): file metadata lives in the sidecar
  (the metadata store);
* usage is a parallel scan in threads, which overlaps the server round trips.

Options (``[volume.NAME.options]``), stable for subclasses such as the NetApp backend, which
extend :data:`NFS_OPTIONS`:

``check-mount`` (true)
    Refuse to start unless the path is on a mount whose type is in ``expected-fstypes``.
``expected-fstypes`` (["nfs", "nfs4"])
    Filesystem types accepted by the mount check.
``mounts-file`` ("/proc/self/mounts")
    The mounts table the check reads (tests point it at a fake one).
``attr-retry-timeout`` (2.0)
    Seconds an existence check retries before "not found" is believed (0: no retry).
``scan-threads`` (8)
    Directories read at once by the usage scan.
``quota-usage-ttl`` (30.0)
    Seconds a scanned quota-scope usage is trusted before the next write re-scans it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trafaret as t

from storage_proxy.core.errors import FileNotFound, PluginError, VFolderNotFound
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import Capability, VFolderID, VFolderUsage
from storage_proxy.volumes.mounts import DEFAULT_MOUNTS_FILE, MountEntry, read_mount
from storage_proxy.volumes.posix import POSIX_KEEPING, BasePosixVolume
from storage_proxy.volumes.quota import ProxyQuotaModel

from .scan import threaded_scan

R = TypeVar("R")

#: The NFS options; a subclass extends them: ``t.Dict({**NFS_OPTIONS, t.Key("x"): ...})``.
NFS_OPTIONS: dict[t.Key, t.Trafaret] = {
    t.Key("check-mount", default=True): t.ToBool(),
    t.Key("expected-fstypes", default=["nfs", "nfs4"]): t.List(t.String(), min_length=1),
    t.Key("mounts-file", default=str(DEFAULT_MOUNTS_FILE)): t.String(),
    t.Key("attr-retry-timeout", default=2.0): t.ToFloat(gte=0),
    t.Key("scan-threads", default=8): t.ToInt(gte=1),
    t.Key("quota-usage-ttl", default=30.0): t.ToFloat(gte=0),
}


def nfs_options(expected_fstypes: list[str]) -> dict[t.Key, t.Trafaret]:
    """:data:`NFS_OPTIONS` for a mount whose types are ``expected_fstypes`` by default (a
    vendor's native client: ``wekafs``, ``lustre``)."""
    options = {k: v for k, v in NFS_OPTIONS.items() if k.name != "expected-fstypes"}
    fstypes = t.List(t.String(), min_length=1)
    return {**options, t.Key("expected-fstypes", default=expected_fstypes): fstypes}


_MISSING = (FileNotFoundError, FileNotFound, VFolderNotFound)
_FIRST_DELAY = 0.02
_MAX_DELAY = 0.25


def _revalidate(directory: Path) -> None:
    """Open and close the directory: close-to-open makes the client refetch its attributes,
    dropping cached lookups (negative ones included) if it changed on the server."""
    try:
        os.close(os.open(directory, os.O_RDONLY | os.O_DIRECTORY))
    except OSError:
        pass


class NfsVolume(BasePosixVolume):
    backend_name = "nfs"
    capabilities = frozenset(
        {Capability.VFOLDER, Capability.QUOTA, Capability.LOCAL_PATH, *POSIX_KEEPING}
    )
    options_schema = t.Dict(NFS_OPTIONS)
    use_xattrs = False  # many servers (and NFSv3) have none: file metadata lives in the sidecar

    #: The mount the volume is on, found by ``init`` (None with ``check-mount = false``).
    mount_info: MountEntry | None = None

    def create_quota_model(self) -> ProxyQuotaModel:
        return ProxyQuotaModel(
            self.name,
            self.quota_scope_path,
            self.vfolder_path,
            self.deps.books,
            self.scan_usage,
            usage_ttl=float(self.options["quota-usage-ttl"]),
        )

    async def init(self) -> None:
        if self.options["check-mount"]:
            self.mount_info = await self._run(self.check_mount)
        await super().init()

    def check_mount(self) -> MountEntry:
        """The mount under the volume path; PluginError unless it has an expected type."""
        expected = self.options["expected-fstypes"]
        entry = read_mount(self.mount_path, Path(self.options["mounts-file"]))
        if entry is None or entry.fstype not in expected:
            found = f"a {entry.fstype} mount at {entry.mount_point}" if entry else "no mount"
            raise PluginError(
                f"volume {self.name!r}: {self.mount_path} is on {found}, not one of "
                f"{', '.join(expected)}; mount the export there (or set check-mount = false)"
            )
        return entry

    # -- usage -------------------------------------------------------------------------------
    async def scan_usage(self, path: Path) -> VFolderUsage:
        return await asyncio.to_thread(threaded_scan, str(path), self.options["scan-threads"])

    async def get_usage(self, vfid: VFolderID) -> VFolderUsage:
        return await self.scan_usage(await self._run(self._existing_vfolder, vfid))

    # -- attribute caching: existence checks retry briefly -----------------------------------
    def _existing_vfolder(self, vfid: VFolderID) -> Path:
        """Blocking, in a worker thread: retry a miss (a vfolder made moments ago elsewhere)."""
        check = super()._existing_vfolder
        deadline = time.monotonic() + self.options["attr-retry-timeout"]
        delay = _FIRST_DELAY
        while True:
            try:
                return check(vfid)
            except _MISSING:
                if time.monotonic() + delay > deadline:
                    raise
            _revalidate(self.vfolder_path(vfid).parent)
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _retry_missing(
        self, vfid: VFolderID, rel: RelPath, op: Callable[[], Awaitable[R]]
    ) -> R:
        """While ``op`` says "not found", revalidate the parent and retry until the
        ``attr-retry-timeout`` has passed."""
        deadline = time.monotonic() + self.options["attr-retry-timeout"]
        delay = _FIRST_DELAY
        parent = self.vfolder_path(vfid).joinpath(*rel.parts[:-1])
        while True:
            try:
                return await op()
            except _MISSING:
                if time.monotonic() + delay > deadline:
                    raise
            await self._run(_revalidate, parent)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)


__all__ = ["NFS_OPTIONS", "MountEntry", "NfsVolume", "nfs_options"]
