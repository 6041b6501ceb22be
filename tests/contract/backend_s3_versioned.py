"""s3 on a bucket with versioning on (the session's RGW, as ``backend_s3``): snapshots are
manifests of object versions instead of server-side copies, so the whole contract runs again on
the other way of keeping them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from s3_server import S3Endpoint, new_bucket, s3_endpoint

from contract.backend_s3 import s3_options, started
from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps


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


SPEC = BackendSpec(name="s3_versioned", make_volume=make)
