"""Node registration under a lease in a real etcd: listed while alive, gone when it dies."""

from __future__ import annotations

import asyncio
import time

from storage_proxy.config import validate
from storage_proxy.infra.etcd import EtcdClient
from storage_proxy.infra.node_registry import NodeRegistry, list_nodes, node_info_from_config


async def _wait_gone(client: EtcdClient, node_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while any(n["node_id"] == node_id for n in await list_nodes(client)):
        assert time.monotonic() < deadline, f"{node_id} still listed after {within}s"
        await asyncio.sleep(0.1)


def test_node_info_from_config() -> None:
    cfg = validate(
        {
            "storage-proxy": {"node-id": "n1"},
            "api": {"manager": {"service-addr": "10.0.0.1:6022", "ssl-enabled": False}},
            "etcd": {"announce-client": "https://proxy.example:443"},
            "volume": {"v": {"backend": "vfs", "path": "/tmp/v"}},
        }
    )
    info = node_info_from_config(cfg)
    assert info["node_id"] == "n1"
    assert info["announce"] == {
        "client": "https://proxy.example:443",
        "manager": "http://10.0.0.1:6022",
    }
    assert info["volumes"] == {"v": "vfs"}


async def test_registered_node_is_listed_and_close_removes_it(etcd_client: EtcdClient) -> None:
    a = NodeRegistry(etcd_client, {"node_id": "a", "volumes": {"v": "vfs"}}, ttl=5)
    b = NodeRegistry(etcd_client, {"node_id": "b", "volumes": {}}, ttl=5)
    await a.register()
    await b.register()
    assert [n["node_id"] for n in await a.list_nodes()] == ["a", "b"]
    await a.update(volumes={"v": "vfs", "w": "s3"})
    assert (await list_nodes(etcd_client))[0]["volumes"] == {"v": "vfs", "w": "s3"}
    await a.close()  # revokes the lease: gone at once
    assert [n["node_id"] for n in await list_nodes(etcd_client)] == ["b"]
    await b.close()
    assert await list_nodes(etcd_client) == []


async def test_keepalive_holds_the_node_past_its_ttl(etcd_client: EtcdClient) -> None:
    node = NodeRegistry(etcd_client, {"node_id": "alive"}, ttl=1)
    await node.register()
    try:
        await asyncio.sleep(2.5)
        assert [n["node_id"] for n in await list_nodes(etcd_client)] == ["alive"]
    finally:
        await node.close()


async def test_dead_node_disappears_when_its_lease_expires(etcd_client: EtcdClient) -> None:
    node = NodeRegistry(etcd_client, {"node_id": "doomed"}, ttl=1)
    await node.register()
    assert [n["node_id"] for n in await list_nodes(etcd_client)] == ["doomed"]
    node.stop_keepalive()  # the process "dies": no more refreshes, no revoke
    await _wait_gone(etcd_client, "doomed", within=8)


async def test_revoked_lease_removes_the_node(etcd_client: EtcdClient) -> None:
    node = NodeRegistry(etcd_client, {"node_id": "revoked"}, ttl=30)
    await node.register()
    node.stop_keepalive()
    assert node.lease_id is not None
    await etcd_client.revoke(node.lease_id)  # e.g. an operator evicts it
    await _wait_gone(etcd_client, "revoked", within=2)
