"""Fixtures for the s3 backend and the data proxy: the session's moto server (shared with the
contract suite), a bare S3 volume, and in-process daemons whose data-proxy volume is s3 or vfs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from api_fixtures import MANAGER_SECRET, Daemon, raw_config

from contract.backend_s3 import ACCESS_KEY, SECRET_KEY, moto_server, s3_options
from storage_proxy.api.client import create_client_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.config import validate
from storage_proxy.context import build_root_context
from storage_proxy.deltaview.testing import MotoServer
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_s3 import S3Volume


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    yield moto_server()


@pytest.fixture(scope="session")
def raw_s3(moto: MotoServer) -> Any:
    """A plain boto3 client on the same endpoint, to look behind the volume's back."""
    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[VolumeDeps]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield VolumeDeps(metadata=store, scanner=TreeScanner(0), scandir_limit=1000)
    await store.close()


VolumeMaker = Callable[..., AbstractAsyncContextManager[S3Volume]]


@pytest.fixture
def make_s3(tmp_path: Path, deps: VolumeDeps) -> VolumeMaker:
    @asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[S3Volume]:
        volume = S3Volume("s3", tmp_path / "s3", options=s3_options(**options), deps=deps)
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


def daemon_config(tmp_path: Path, dataproxy_volume: str, **dataproxy: Any) -> dict[str, Any]:
    """The API fixtures' daemon plus an S3 volume and the signed-URL (dataproxy) section."""
    cfg = raw_config(tmp_path)
    cfg["volume"]["s3vol"] = {
        "backend": "s3",
        "path": str(tmp_path / "s3"),
        "options": s3_options(),
    }
    cfg["dataproxy"] = {"volume": dataproxy_volume, **dataproxy}
    return validate(cfg)


@pytest.fixture
def start_daemon(
    tmp_path: Path, aiohttp_client: Any
) -> Callable[..., AbstractAsyncContextManager[Daemon]]:
    @asynccontextmanager
    async def start(dataproxy_volume: str, **dataproxy: Any) -> AsyncIterator[Daemon]:
        ctx = await build_root_context(daemon_config(tmp_path, dataproxy_volume, **dataproxy))
        try:
            manager = await aiohttp_client(create_manager_app(ctx))
            manager.session.headers[AUTH_HEADER] = MANAGER_SECRET
            client = await aiohttp_client(create_client_app(ctx))
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
