"""s3 on a bucket with versioning on (the session's RGW, as ``backend_s3``): snapshots are
manifests of object versions instead of server-side copies, so the whole contract runs again on
the other way of keeping them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from s3_server import S3Endpoint, new_bucket, s3_endpoint

from contract import backend_s3
from contract.backend_s3 import s3_options, started
from contract.spec import BackendSpec
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_s3 import S3Volume


def versioned_bucket(endpoint: S3Endpoint) -> str:
    """A fresh bucket with versioning ``Enabled`` (blocking)."""
    bucket = new_bucket(endpoint, "tv")
    endpoint.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return bucket


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    endpoint = await asyncio.to_thread(s3_endpoint)
    bucket = await asyncio.to_thread(versioned_bucket, endpoint)
    options = s3_options(endpoint, bucket, **{"create-bucket": False})
    async with started("s3v", tmp_path, deps, options) as volume:
        yield volume


SPEC = BackendSpec(name="s3_versioned", make_volume=make, raw_reads=True)


@asynccontextmanager
async def s3_volume_in_mode(mode: str, tmp_path: Path) -> AsyncIterator[S3Volume]:
    """A started s3 volume whose snapshots are ``copies`` or ``versions``, with its own books."""
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    deps = VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    maker = backend_s3.make if mode == "copies" else make
    try:
        async with maker(tmp_path, deps) as volume:
            assert isinstance(volume, S3Volume)
            assert volume.versioned is (mode == "versions")
            yield volume
    finally:
        await store.close()
