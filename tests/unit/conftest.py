"""Fixtures for unit tests: a real vfs volume on a temporary directory, no servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import new_vfid
from storage_proxy.core.types import VFolderID
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_vfs import VfsVolume


@pytest.fixture
async def metadata_store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def vfs_volume(
    tmp_path: Path, metadata_store: SqliteMetadataStore
) -> AsyncIterator[VfsVolume]:
    deps = VolumeDeps(
        books=MetadataBooks(metadata_store), scanner=TreeScanner(0), scandir_limit=1000
    )
    volume = VfsVolume("vol", tmp_path / "vol", options={"quota-usage-ttl": 0}, deps=deps)
    await volume.init()
    yield volume
    await volume.shutdown()


@pytest.fixture
async def vfolder(vfs_volume: VfsVolume) -> VFolderID:
    vfid = new_vfid()
    await vfs_volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
    await vfs_volume.create_vfolder(vfid)
    return vfid
