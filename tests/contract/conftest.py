"""The backend contract: the same cases against every volume backend.

Each backend adds a module ``backend_<name>.py`` here exporting ``SPEC = BackendSpec(...)``: a name
and an async context manager that yields a started volume on fresh storage (the backend's real
storage where this machine can run it, its documented emulator where it cannot).  Differences
between backends are declared by capability flags, never by backend names in the cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contract.spec import BackendSpec, all_specs
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy.volumes.scan import TreeScanner


@pytest.fixture(params=all_specs(), ids=lambda spec: spec.name)
def spec(request: pytest.FixtureRequest) -> BackendSpec:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    """The books a volume may consult (limits, the ledger, sidecar file metadata)."""
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def volume(
    spec: BackendSpec, tmp_path: Path, store: SqliteMetadataStore
) -> AsyncIterator[AbstractVolume]:
    deps = VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    async with spec.make_volume(tmp_path, deps) as vol:
        yield vol
