"""Fixtures for the s3 backend and the data proxy: the session's S3 server (a real Ceph RGW, shared
with the contract suite; see ``tests/s3_server.py``), a bare S3 volume, and in-process daemons
whose data-proxy volume is s3 or vfs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import MANAGER_SECRET, Daemon, raw_config
from s3_server import S3Endpoint, s3_endpoint

from contract.backend_s3 import s3_options
from storage_proxy.api.client import create_client_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.config import validate
from storage_proxy.context import build_root_context
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_s3 import S3Volume


@pytest.fixture(scope="session")
def s3() -> S3Endpoint:
    return s3_endpoint()


@pytest.fixture(scope="session")
def raw_s3(s3: S3Endpoint) -> Any:
    """A plain boto3 client on the same endpoint, to look behind the volume's back."""
    return s3.client()


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[VolumeDeps]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    await store.close()


VolumeMaker = Callable[..., AbstractAsyncContextManager[S3Volume]]


@pytest.fixture
def make_s3(tmp_path: Path, deps: VolumeDeps, s3: S3Endpoint) -> VolumeMaker:
    @asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[S3Volume]:
        volume = S3Volume("s3", tmp_path / "s3", options=s3_options(s3, **options), deps=deps)
        await volume.init()
        try:
            yield volume
        finally:
            await volume.shutdown()

    return make


@pytest.fixture
async def s3_volume(make_s3: VolumeMaker) -> AsyncIterator[S3Volume]:
    async with make_s3() as volume:
        yield volume


def daemon_config(
    tmp_path: Path,
    s3: S3Endpoint,
    dataproxy_volume: str,
    sp: dict[str, Any] | None = None,
    **dataproxy: Any,
) -> dict[str, Any]:
    """The API fixtures' daemon plus an S3 volume and the signed-URL (dataproxy) section;
    ``sp``: more ``[storage-proxy]`` settings."""
    cfg = raw_config(tmp_path, **(sp or {}))
    cfg["volume"]["s3vol"] = {
        "backend": "s3",
        "path": str(tmp_path / "s3"),
        "options": s3_options(s3),
    }
    cfg["dataproxy"] = {"volume": dataproxy_volume, **dataproxy}
    return validate(cfg)


@pytest.fixture
def start_daemon(
    tmp_path: Path, aiohttp_client: Any, s3: S3Endpoint
) -> Callable[..., AbstractAsyncContextManager[Daemon]]:
    @asynccontextmanager
    async def start(
        dataproxy_volume: str, sp: dict[str, Any] | None = None, **dataproxy: Any
    ) -> AsyncIterator[Daemon]:
        cfg = daemon_config(tmp_path, s3, dataproxy_volume, sp, **dataproxy)
        ctx = await build_root_context(cfg)
        try:
            manager = await aiohttp_client(create_manager_app(ctx.services))
            manager.session.headers[AUTH_HEADER] = MANAGER_SECRET
            client = await aiohttp_client(create_client_app(ctx.services))
            ctx.dataproxy.client_url = str(client.make_url("/")).rstrip("/")
            yield Daemon(ctx, manager, client)
        finally:
            await ctx.close()

    return start


@pytest.fixture(params=["s3vol", "vol1"], ids=["s3", "vfs"])
async def dp_daemon(
    request: pytest.FixtureRequest, start_daemon: Callable[..., Any]
) -> AsyncIterator[Daemon]:
    async with start_daemon(request.param) as daemon:
        yield daemon
