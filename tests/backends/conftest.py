"""Fixtures for backend tests: the session's real CephFS and per-test volumes on it.

The cluster starts once per session (about 2 s; its Debian packages are installed first by
``scripts/ci-apt.sh`` if missing) and is torn down when the session ends.  A cluster that cannot
start fails the tests that need it (it is not skipped): these tests are the proof of the backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from contract.backend_cephfs import CLUSTER
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_cephfs import CephFSVolume


@pytest.fixture(scope="session")
def cephfs_mount() -> Iterator[Path]:
    """The ceph-fuse mount point of the session's cluster."""
    yield CLUSTER.mount
    CLUSTER.stop()


@pytest.fixture
def ceph_dir(cephfs_mount: Path) -> Path:
    """A fresh directory on CephFS for one test."""
    path = cephfs_mount / "backends" / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


@pytest.fixture
async def metadata_store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def volume_deps(metadata_store: SqliteMetadataStore) -> VolumeDeps:
    return VolumeDeps(
        books=MetadataBooks(metadata_store), scanner=TreeScanner(0), scandir_limit=1000
    )


@pytest.fixture
async def cephfs_volume(ceph_dir: Path, volume_deps: VolumeDeps) -> AsyncIterator[CephFSVolume]:
    volume = CephFSVolume("ceph", ceph_dir / "vol", deps=volume_deps)
    await volume.init()
    yield volume
    await volume.shutdown()
