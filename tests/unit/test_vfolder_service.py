"""The vfolder service keeps the registry in step with the storage (volumes only store)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from helpers import new_vfid
from storage_proxy.core.errors import VFolderExists, VFolderNotFound
from storage_proxy.core.types import QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.audit import AuditLog
from storage_proxy.services.bgtasks import BackgroundTaskService, VFolderBusy
from storage_proxy.services.usage import UsageService
from storage_proxy.services.vfolders import VFolderService
from storage_proxy.volumes.registry import VolumeRegistry
from storage_proxy_vfs import VfsVolume


@pytest.fixture
async def service(
    vfs_volume: VfsVolume, metadata_store: SqliteMetadataStore
) -> AsyncIterator[VFolderService]:
    volumes = VolumeRegistry()
    volumes._volumes["vol"] = vfs_volume
    volumes._backends["vol"] = "vfs"
    bgtasks = BackgroundTaskService(metadata_store, "node")
    await bgtasks.start()
    yield VFolderService(
        volumes, metadata_store, bgtasks, UsageService(volumes, None, None), AuditLog()
    )
    await bgtasks.stop()


async def test_create_registers_and_delete_unregisters(
    service: VFolderService, metadata_store: SqliteMetadataStore, vfs_volume: VfsVolume
) -> None:
    vfid = new_vfid()
    await service.create("vol", vfid, owner="alice")  # its quota scope is made with it
    [record] = await metadata_store.list_vfolders("vol")
    assert (record.vfid, record.owner, record.kind) == (str(vfid), "alice", "user")
    with pytest.raises(VFolderExists):
        await service.create("vol", vfid)
    await service.wait(await service.start_delete("vol", vfid))
    assert await metadata_store.list_vfolders("vol") == []
    assert not await vfs_volume.vfolder_exists(vfid)
    with pytest.raises(VFolderNotFound):
        await service.start_delete("vol", vfid)


async def test_clone_registers_the_copy_with_the_owner(
    service: VFolderService, metadata_store: SqliteMetadataStore
) -> None:
    src, dst = new_vfid(), new_vfid()
    await service.create("vol", src, owner="team", kind="group")
    await service.wait(await service.start_clone("vol", src, dst))
    record = await metadata_store.get_vfolder("vol", str(dst))
    assert record is not None and (record.owner, record.kind) == ("team", "group")


async def test_a_vfolder_made_outside_is_registered_on_first_use(
    service: VFolderService, metadata_store: SqliteMetadataStore, vfs_volume: VfsVolume
) -> None:
    vfid = new_vfid()
    await vfs_volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await vfs_volume.create_vfolder(vfid)  # straight on the volume: no registry entry
    assert await metadata_store.get_vfolder("vol", str(vfid)) is None
    record = await service.registered("vol", vfid)
    assert record.vfid == str(vfid)
    with pytest.raises(VFolderNotFound):
        await service.registered("vol", new_vfid())


async def test_a_vfolder_whose_registration_fails_leaves_nothing(
    vfs_volume: VfsVolume, metadata_store: SqliteMetadataStore
) -> None:
    """A create that cannot be recorded is undone, so a retry is not refused as a duplicate."""

    class Refusing:  # the store refuses the registration (say, it stayed locked)
        def __getattr__(self, name: str) -> Any:
            return getattr(metadata_store, name)

        async def register_vfolder(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("the metadata store is away")

    volumes = VolumeRegistry()
    volumes._volumes["vol"] = vfs_volume
    bgtasks = BackgroundTaskService(metadata_store, "node")
    usage = UsageService(volumes, None, None)
    refusing = VFolderService(volumes, Refusing(), bgtasks, usage, AuditLog())  # type: ignore[arg-type]
    vfid = VFolderID(QuotaScopeID(QuotaScopeType.USER, uuid.uuid4()), uuid.uuid4())
    with pytest.raises(RuntimeError):
        await refusing.create("vol", vfid)
    assert not vfs_volume.vfolder_path(vfid).exists()
    working = VFolderService(volumes, metadata_store, bgtasks, usage, AuditLog())
    await working.create("vol", vfid)  # the retry succeeds
    assert vfs_volume.vfolder_path(vfid).is_dir()


async def test_no_create_into_a_vfolder_a_task_holds(service: VFolderService) -> None:
    vfid = new_vfid()
    release = asyncio.Event()

    async def hold(reporter: Any) -> None:
        await release.wait()

    task = await service._bgtasks.spawn("test", hold, busy=[("vol", str(vfid), "cloning")])
    with pytest.raises(VFolderBusy):
        await service.create("vol", vfid)
    release.set()
    await service.wait(task)
    await service.create("vol", vfid)
