"""The daemon on a real etcd: shared config overlays the file, a new volume in etcd is served
without a restart, the node registers under a lease, and the metadata lives in etcd."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import jwt

from helpers import free_port
from storage_proxy.config import load_config
from storage_proxy.infra.etcd import EtcdClient
from storage_proxy.infra.node_registry import list_nodes
from storage_proxy.infra.shared_config import publish
from storage_proxy.metadata.etcd import EtcdMetadataStore
from storage_proxy.server import serve

SECRET = "etcd-test-manager-secret"


async def wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_daemon_follows_etcd(
    tmp_path: Path,
    etcd_server,
    etcd_namespace: str,
    etcd_client: EtcdClient,  # type: ignore[no-untyped-def]
) -> None:
    mport, cport, iport = free_port(), free_port(), free_port()
    conf = tmp_path / "sp.toml"
    conf.write_text(
        f"""
[storage-proxy]
node-id = "etcd-node-1"
data-dir = "{tmp_path / "data"}"
scan-workers = 0
[api.manager]
service-addr = {{ host = "127.0.0.1", port = {mport} }}
internal-addr = {{ host = "127.0.0.1", port = {iport} }}
secret = "{SECRET}"
[api.client]
service-addr = {{ host = "127.0.0.1", port = {cport} }}
[volume.local]
backend = "vfs"
path = "{tmp_path / "local"}"
[etcd]
namespace = "{etcd_namespace}"
addr = {{ host = "{etcd_server.host}", port = {etcd_server.port} }}
node-ttl = 2
[metadata]
backend = "etcd"
"""
    )
    # Shared config published before start overlays the file (session lifetime from etcd).
    await publish(etcd_client, {"storage-proxy": {"session-expire": "2h"}})
    stop = asyncio.Event()
    daemon = asyncio.create_task(serve(load_config(conf, {}), stop=stop))
    base = f"http://127.0.0.1:{mport}"
    headers = {"X-BackendAI-Storage-Auth-Token": SECRET}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def up() -> bool:
            try:
                async with http.get(base + "/status") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        async def volumes() -> set[str]:
            async with http.get(base + "/volumes") as r:
                return {v["name"] for v in (await r.json())["volumes"]}

        try:
            await wait_for(up)
            nodes = await list_nodes(etcd_client)
            [node] = [n for n in nodes if n["node_id"] == "etcd-node-1"]
            assert node["volumes"] == {"local": "vfs"}

            # A volume added in etcd is served without a restart, and the node says so.
            await publish(
                etcd_client,
                {"volume": {"shared": {"backend": "vfs", "path": str(tmp_path / "shared")}}},
            )

            async def has_shared() -> bool:
                return "shared" in await volumes()

            await wait_for(has_shared)

            async def announced() -> bool:
                nodes = await list_nodes(etcd_client)
                return any(n["volumes"].get("shared") == "vfs" for n in nodes)

            await wait_for(announced)

            # The vfolder registry lives in etcd.
            vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
            async with http.post(
                base + "/folder/create", json={"volume": "shared", "vfid": vfid}
            ) as r:
                assert r.status == 204
            record = await EtcdMetadataStore(etcd_client).get_vfolder("shared", vfid)
            assert record is not None and record.vfid == vfid
            async with http.post(
                base + "/folder/file/upload",
                json={"volume": "shared", "vfid": vfid, "relpath": "x", "size": 1},
            ) as r:
                token = (await r.json())["token"]
            claims = jwt.decode(token, options={"verify_signature": False})
            assert 2 * 3600 - 60 < claims["exp"] - time.time() <= 2 * 3600
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 30)
    # The node's lease is revoked on a clean stop: a manager no longer sees it.
    assert not [n for n in await list_nodes(etcd_client) if n["node_id"] == "etcd-node-1"]
