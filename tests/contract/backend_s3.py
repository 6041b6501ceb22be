"""s3: a real S3 HTTP endpoint (moto's server mode on 127.0.0.1), started once per test session.

The server lives here (not in a conftest) so the contract suite and ``tests/s3`` share one
instance under one module name; it is started on first use and stopped at exit.  Each volume gets
a fresh bucket (``create-bucket``) so tests never see each other's keys.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from contract.spec import BackendSpec
from storage_proxy.deltaview.testing import MotoServer
from storage_proxy.volumes.abc import AbstractVolume, VolumeDeps
from storage_proxy_s3 import S3Volume

ACCESS_KEY = "AKIDS3VOLUMETEST"
SECRET_KEY = "s3-volume-test-secret-NEVER-LOGGED"
_lock = threading.Lock()
_server: MotoServer | None = None


def moto_server() -> MotoServer:
    """The session's moto server, started on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = MotoServer().start()
            atexit.register(_server.stop)
        return _server


def s3_options(bucket: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": moto_server().endpoint,
        "bucket": bucket or f"t-{uuid.uuid4().hex[:20]}",
        "prefix": "vols/a",
        "access-key": ACCESS_KEY,
        "secret-key": SECRET_KEY,
        "disable-ssl": True,
        "addressing-style": "path",
        "create-bucket": True,
        "part-size": "5Mi",
        "quota-usage-ttl": 0,
        **extra,
    }


@asynccontextmanager
async def make(tmp_path: Path, deps: VolumeDeps) -> AsyncIterator[AbstractVolume]:
    volume = S3Volume("s3", tmp_path / "s3", options=s3_options(), deps=deps)
    await volume.init()
    try:
        yield volume
    finally:
        await volume.shutdown()


SPEC = BackendSpec(name="s3", make_volume=make)
