"""Vfolders: their life (create with its scope, delete, clone), their registry entry and owner,
where they are mounted, their usage and retention — the rules once, for every door.

Volumes only store; this service keeps the registry in step with the storage: a vfolder is
registered when it is created or cloned (undone if that fails, so a retry is not refused as a
duplicate), unregistered when it is deleted, and registered on first use when it was made
outside the daemon.  Delete and clone run as background tasks that mark the vfolders busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import (
    QuotaScopeNotFound,
    VFolderExists,
    VFolderNotFound,
)
from ..core.paths import RelPath
from ..core.records import VFolderRecord
from ..core.types import FSUsage, QuotaConfig, VFolderID, VFolderUsage
from ..metadata.store import MetadataStore
from ..volumes.abc import DEFAULT_VFOLDER_MODE, AbstractVolume
from ..volumes.registry import VolumeRegistry
from .audit import AuditLog
from .bgtasks import BackgroundTaskService, ProgressReporter
from .usage import UsageService

PROGRESS_POLL = 0.5


class VFolderService:
    def __init__(
        self,
        volumes: VolumeRegistry,
        metadata: MetadataStore,
        bgtasks: BackgroundTaskService,
        usage: UsageService,
        audit: AuditLog,
        retention_days: dict[str, float] | None = None,
    ) -> None:
        self.volumes = volumes
        self._metadata = metadata
        self._bgtasks = bgtasks
        self._usage = usage
        self._audit = audit
        self._retention_days = dict(retention_days or {})

    # -- life ------------------------------------------------------------------------------------
    async def create(
        self,
        volume_name: str,
        vfid: VFolderID,
        *,
        mode: int | None = None,
        owner: str | None = None,
        kind: str = "user",
        initial_scope_limit: int | None = None,
    ) -> None:
        """Create and register a vfolder; its quota scope is created with it if missing (as in
        Backend.AI), with ``initial_scope_limit`` if given."""
        volume = self.volumes.get(volume_name)
        mode = DEFAULT_VFOLDER_MODE if mode is None else mode
        await self._bgtasks.ensure_writable(volume_name, str(vfid))  # a clone is making it
        async with self._audit.operation("vfolder.create", volume_name, vfid):
            try:
                await volume.create_vfolder(vfid, mode=mode)
            except QuotaScopeNotFound:
                config = QuotaConfig(initial_scope_limit) if initial_scope_limit else None
                if not await volume.quota_model.quota_scope_exists(vfid.quota_scope_id):
                    await volume.quota_model.create_quota_scope(vfid.quota_scope_id, config)
                await volume.create_vfolder(vfid, mode=mode)
            try:
                await self._metadata.register_vfolder(
                    volume_name, str(vfid), str(vfid.quota_scope_id), owner=owner, kind=kind
                )
            except BaseException:
                # a vfolder the registry does not know would block a retry: leave nothing
                await asyncio.shield(_discard(volume, vfid))
                raise

    async def ensure(self, volume_name: str, vfid: VFolderID) -> None:
        """The vfolder exists and is registered (made, with its scope, if it was not)."""
        if await self._metadata.get_vfolder(volume_name, str(vfid)) is not None:
            return
        try:
            await self.create(volume_name, vfid)
        except VFolderExists:
            await self.registered(volume_name, vfid)

    async def registered(self, volume_name: str, vfid: VFolderID) -> VFolderRecord:
        """The vfolder's registry entry; one made outside this daemon is registered on first
        use.  VFolderNotFound if the storage has no such vfolder."""
        volume = self.volumes.get(volume_name)
        record = await self._metadata.get_vfolder(volume_name, str(vfid))
        if record is not None:
            return record
        if not await volume.vfolder_exists(vfid):
            raise VFolderNotFound(f"no vfolder {vfid} on volume {volume_name!r}")
        await self._metadata.register_vfolder(volume_name, str(vfid), str(vfid.quota_scope_id))
        record = await self._metadata.get_vfolder(volume_name, str(vfid))
        assert record is not None
        return record

    async def start_delete(self, volume_name: str, vfid: VFolderID) -> str:
        """404 now if it does not exist; the rest happens in a task (the vfolder ``deleting``)."""
        volume = self.volumes.get(volume_name)
        if not await volume.vfolder_exists(vfid):
            raise VFolderNotFound(f"no vfolder {vfid} on volume {volume_name!r}")

        async def delete(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, 1, "moving the vfolder to the trash", force=True)
            async with self._audit.operation("vfolder.delete", volume_name, vfid):
                await volume.delete_vfolder(vfid)
                await self._metadata.unregister_vfolder(volume_name, str(vfid))
            await self._usage.changed(volume_name, vfid)
            await reporter.update(1, 1, "deleted", force=True)
            return {"volume": volume_name, "vfid": str(vfid)}

        return await self._bgtasks.spawn(
            "vfolder-delete",
            delete,
            params={"volume": volume_name, "vfid": str(vfid)},
            busy=[(volume_name, str(vfid), "deleting")],
        )

    async def start_clone(self, volume_name: str, src: VFolderID, dst: VFolderID) -> str:
        """404/409 now for a missing source or an existing target; both are ``cloning``."""
        volume = self.volumes.get(volume_name)
        if not await volume.vfolder_exists(src):
            raise VFolderNotFound(f"no vfolder {src} on volume {volume_name!r}")
        if await volume.vfolder_exists(dst):
            raise VFolderExists(f"vfolder {dst} already exists")

        async def clone(reporter: ProgressReporter) -> dict[str, Any]:
            await reporter.update(0, None, "measuring the source", force=True)
            usage = await volume.get_usage(src)
            await reporter.update(0, usage.used_bytes, "copying", force=True)
            watcher = asyncio.create_task(_watch_copy(volume, dst, reporter))
            try:
                async with self._audit.operation("vfolder.clone", volume_name, dst, path=str(src)):
                    await volume.clone_vfolder(src, dst)
                    source = await self._metadata.get_vfolder(volume_name, str(src))
                    await self._metadata.register_vfolder(
                        volume_name,
                        str(dst),
                        str(dst.quota_scope_id),
                        owner=source.owner if source else None,
                        kind=source.kind if source else "user",
                    )
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await reporter.update(usage.used_bytes, message="cloned", force=True)
            return {"volume": volume_name, "src_vfid": str(src), "dst_vfid": str(dst)}

        return await self._bgtasks.spawn(
            "vfolder-clone",
            clone,
            params={"volume": volume_name, "src_vfid": str(src), "dst_vfid": str(dst)},
            busy=[(volume_name, str(src), "cloning"), (volume_name, str(dst), "cloning")],
        )

    async def wait(self, task_id: str) -> None:
        """Until the task ends; its error, if it failed, is raised here."""
        await self._bgtasks.wait(task_id)

    # -- where and how much ------------------------------------------------------------------
    async def mount(self, volume_name: str, vfid: VFolderID, subpath: RelPath) -> Path:
        return await self.volumes.get(volume_name).get_vfolder_mount(vfid, subpath)

    async def usage(self, volume_name: str, vfid: VFolderID) -> VFolderUsage:
        return await self._usage.get(volume_name, vfid)

    async def used_bytes(self, volume_name: str, vfid: VFolderID) -> int:
        return await self.volumes.get(volume_name).get_used_bytes(vfid)

    async def fs_usage(self, volume_name: str) -> FSUsage:
        return await self.volumes.get(volume_name).get_fs_usage()

    async def describe_volumes(self) -> list[dict[str, Any]]:
        items = []
        for name, volume in self.volumes.items():
            caps = await volume.get_capabilities()
            items.append(
                {
                    "name": name,
                    "backend": self.volumes.backend_of(name),
                    "path": str(volume.mount_path),
                    "fsprefix": volume.fsprefix,
                    "capabilities": sorted(c.value for c in caps),
                }
            )
        return items

    async def hwinfo(self, volume_name: str) -> dict[str, Any]:
        """Backend.AI's hardware report of a volume (VolumeNotFound, 404, for an unknown one)."""
        self.volumes.get(volume_name)
        return {"status": "healthy", "status_info": None, "metadata": {}}

    async def performance_metric(self, volume_name: str) -> dict[str, Any]:
        """Backend.AI's live I/O figures of a volume (IOPS, throughput, latency over a short
        window) where its backend reads them — local file systems from their block device;
        UnsupportedOperation (400) where it cannot, as Backend.AI answers."""
        metric = await self.volumes.get(volume_name).performance_metric()
        return {"metric": dataclasses.asdict(metric), "observed_at": datetime.now(UTC).isoformat()}

    async def audit_entries(
        self, volume_name: str, vfid: VFolderID, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The vfolder's latest audit entries, newest first."""
        self.volumes.get(volume_name)
        return await asyncio.to_thread(self._audit.recent, volume_name, vfid, limit)

    # -- retention -------------------------------------------------------------------------------
    async def retention(
        self, volume_name: str, vfid: VFolderID
    ) -> tuple[float | None, float | None]:
        """(the vfolder's own period, the volume's) in days; None where there is none."""
        own = await self._metadata.get_vfolder_retention(volume_name)
        return own.get(str(vfid)), self._retention_days.get(volume_name)

    async def set_retention(self, volume_name: str, vfid: VFolderID, days: float | None) -> None:
        if await self._metadata.get_vfolder(volume_name, str(vfid)) is None:
            raise VFolderNotFound(f"no vfolder {vfid} on volume {volume_name!r}")
        await self._metadata.set_vfolder_retention(volume_name, str(vfid), days)


async def _discard(volume: AbstractVolume, vfid: VFolderID) -> None:
    with contextlib.suppress(Exception):
        await volume.delete_vfolder(vfid)


async def _watch_copy(volume: AbstractVolume, dst: VFolderID, reporter: ProgressReporter) -> None:
    """Progress of a clone, from what the volume says it has copied so far (if it can say)."""
    while True:
        await asyncio.sleep(PROGRESS_POLL)
        copied = await volume.clone_progress(dst)
        if copied is None:
            return
        if reporter.total is not None:
            copied = min(copied, int(reporter.total))
        await reporter.update(copied)
