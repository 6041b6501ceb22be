"""Live proxy nodes under ``nodes/<node-id>``, each key attached to the node's lease.

Why a lease: a manager must only see proxies that are alive. The key vanishes by itself when the
node stops refreshing its lease (crash, partition), so no one has to clean up after a dead node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from .etcd import EtcdClient, join

log = logging.getLogger(__name__)

NODES_PREFIX = "nodes/"
DEFAULT_TTL = 10


def _url(addr: Mapping[str, Any], scheme: str) -> str:
    host = addr.get("host") or ""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{addr['port']}"


def node_info_from_config(
    config: Mapping[str, Any], volumes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a manager needs to reach this node: id, API URLs and volumes (name → backend)."""
    etcd = config.get("etcd") or {}
    announce: dict[str, str] = {}
    for api in ("client", "manager"):
        listener = config["api"][api]
        scheme = "https" if listener.get("ssl-enabled") else "http"
        announce[api] = etcd.get(f"announce-{api}") or _url(listener["service-addr"], scheme)
    if volumes is None:
        volumes = {name: v["backend"] for name, v in (config.get("volume") or {}).items()}
    return {
        "node_id": config["storage-proxy"]["node-id"],
        "announce": announce,
        "volumes": dict(volumes),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": time.time(),
    }


class NodeRegistry:
    """``register()`` puts this node under a lease and keeps it alive; ``close()`` revokes it."""

    def __init__(self, client: EtcdClient, info: Mapping[str, Any], *, ttl: int = DEFAULT_TTL):
        self.client = client
        self.info = dict(info)
        self.ttl = ttl
        self.key = NODES_PREFIX + join(str(info["node_id"]))
        self.lease_id: int | None = None
        self._keepalive: asyncio.Task[None] | None = None

    async def _put(self) -> None:
        if self.lease_id is None:
            self.lease_id = await self.client.grant(self.ttl)
        await self.client.put(self.key, json.dumps(self.info).encode(), lease=self.lease_id)

    async def register(self) -> None:
        await self._put()
        self._keepalive = asyncio.create_task(self._keep_alive(), name="etcd-node-keepalive")
        log.info("registered node %s in etcd (lease ttl %ds)", self.info["node_id"], self.ttl)

    async def update(self, **fields: Any) -> None:
        """Republish after a change (e.g. a new volume set) under the same lease."""
        self.info.update(fields)
        await self._put()

    async def _keep_alive(self) -> None:
        """Refresh at a third of the TTL; if the lease was lost (etcd restart, long pause),
        take a new one and publish again instead of silently vanishing."""
        while True:
            await asyncio.sleep(max(self.ttl / 3, 0.2))
            try:
                assert self.lease_id is not None
                if await self.client.refresh(self.lease_id) <= 0:
                    log.warning("node lease expired; registering again")
                    self.lease_id = None
                    await self._put()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("etcd keepalive failed; retrying")

    def stop_keepalive(self) -> None:
        """Stop refreshing without revoking: the key disappears when the TTL runs out."""
        if self._keepalive is not None:
            self._keepalive.cancel()

    async def list_nodes(self) -> list[dict[str, Any]]:
        return await list_nodes(self.client)

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        if self.lease_id is not None:
            lease_id, self.lease_id = self.lease_id, None
            try:
                await self.client.revoke(lease_id)
            except Exception:
                log.warning("could not revoke node lease; it expires in %ds", self.ttl)


async def list_nodes(client: EtcdClient) -> list[dict[str, Any]]:
    """Every live node's published document, sorted by node id."""
    nodes = []
    for entry in await client.get_prefix(NODES_PREFIX):
        try:
            nodes.append(json.loads(entry.value))
        except ValueError:
            log.warning("etcd %s: not JSON, ignored", entry.key)
    return sorted(nodes, key=lambda n: str(n.get("node_id")))
