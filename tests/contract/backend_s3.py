"""s3: the session's S3 server (a real Ceph RGW started by ``tests/s3_server.py``, or the S3 named
by ``STORAGE_PROXY_TEST_S3_*``), shared with ``tests/s3``; each volume gets a bucket of its own
(``create-bucket``) so tests never see each other's keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from s3_server import S3Endpoint, s3_endpoint

from contract.spec import BackendSpec
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_s3 import S3Volume


def s3_options(endpoint: S3Endpoint, bucket: str | None = None, **extra: Any) -> dict[str, Any]:
    """Volume options for a fresh bucket on ``endpoint`` (small parts: multipart at 5 MiB)."""
    return {
        "endpoint": endpoint.url,
        "region": endpoint.region,
        "bucket": bucket or f"t-{uuid.uuid4().hex[:20]}",
        "prefix": "vols/a",
        "access-key": endpoint.access_key,
        "secret-key": endpoint.secret_key,
        "disable-ssl": endpoint.url.startswith("http:"),
        "addressing-style": "path",
        "create-bucket": True,
        "part-size": "5Mi",
        "quota-usage-ttl": 0,
        **extra,
    }


@asynccontextmanager
async def started(
    name: str, tmp_path: Path, deps: VolumeDeps, options: dict[str, Any]
) -> AsyncIterator[S3Volume]:
    volume = S3Volume(name, tmp_path / "s3", options=options, deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    endpoint = await asyncio.to_thread(s3_endpoint)  # the first call starts RGW: off the loop
    async with started("s3", tmp_path, deps, s3_options(endpoint)) as volume:
        yield volume


SPEC = BackendSpec(name="s3", make_volume=make, raw_reads=True)
