"""Per-test etcd namespaces and clients on the session's real etcd (tests/etcd_fixtures.py).

Each test gets its own namespace, so tests never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from etcd_fixtures import EtcdServer

from storage_proxy.infra.etcd import EtcdClient


@pytest.fixture
def etcd_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def etcd_client(etcd_server: EtcdServer, etcd_namespace: str) -> AsyncIterator[EtcdClient]:
    client = EtcdClient(etcd_server.host, etcd_server.port, namespace=etcd_namespace)
    await client.connect()
    yield client
    await client.delete_prefix("")
    await client.close()
