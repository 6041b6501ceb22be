"""A thin wrapper over ``aetcd`` that scopes every key under ``<prefix>/<namespace>/``.

Why a wrapper: several proxies (and several deployments) share one etcd, so every component speaks
in keys relative to its namespace root and never builds absolute keys itself; it also keeps the
untyped ``aetcd`` API (bytes in, bytes out) behind a small typed surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import aetcd
from aetcd import utils as aetcd_utils

DEFAULT_PREFIX = "/storage-proxy"


def quote_part(part: str) -> str:
    """One key component: ``/`` and ``%`` escaped so a component never spans two levels."""
    return quote(part, safe="")


def unquote_part(part: str) -> str:
    return unquote(part)


def join(*parts: str) -> str:
    return "/".join(quote_part(p) for p in parts)


@dataclass(frozen=True, slots=True)
class Entry:
    key: str  # relative to the namespace root
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "PUT" or "DELETE"
    key: str
    value: bytes
    revision: int


class EtcdClient:
    """Keys are strings relative to ``<prefix>/<namespace>/``; values are bytes."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2379,
        *,
        namespace: str = "local",
        prefix: str = DEFAULT_PREFIX,
        user: str = "",
        password: str = "",
        timeout: float | None = 10.0,
    ) -> None:
        self.root = f"{prefix.rstrip('/')}/{quote_part(namespace)}/"
        self._client = aetcd.Client(
            host=host,
            port=port,
            username=user or None,
            password=password or None,
            timeout=timeout,
        )
        self.tx = self._client.transactions

    @classmethod
    def from_config(cls, etcd_cfg: Mapping[str, Any]) -> EtcdClient:
        """Build from a validated ``[etcd]`` section."""
        return cls(
            etcd_cfg["addr"]["host"],
            int(etcd_cfg["addr"]["port"]),
            namespace=etcd_cfg["namespace"],
            prefix=etcd_cfg.get("prefix", DEFAULT_PREFIX),
            user=etcd_cfg.get("user", ""),
            password=etcd_cfg.get("password", ""),
        )

    @property
    def raw(self) -> aetcd.Client:
        return self._client

    def abs(self, key: str) -> bytes:
        return (self.root + key).encode()

    def rel(self, key: bytes) -> str:
        return key.decode()[len(self.root) :]

    async def connect(self) -> None:
        await self._client.connect()

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> EtcdClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _entry(self, kv: Any) -> Entry:
        return Entry(self.rel(kv.key), kv.value, kv.mod_revision, kv.create_revision, kv.lease)

    async def get(self, key: str) -> Entry | None:
        kv = await self._client.get(self.abs(key))
        return None if kv is None else self._entry(kv)

    async def get_prefix(self, prefix: str) -> list[Entry]:
        found = await self._client.get_prefix(self.abs(prefix))
        return [self._entry(kv) for kv in found]

    async def snapshot(self, prefix: str) -> tuple[list[Entry], int]:
        """Entries under ``prefix`` and the revision they were read at (watch from rev + 1)."""
        found = await self._client.get_prefix(self.abs(prefix))
        return [self._entry(kv) for kv in found], int(found.header.revision)

    async def put(self, key: str, value: bytes, *, lease: int | None = None) -> None:
        await self._client.put(self.abs(key), value, lease=lease)

    async def delete(self, key: str) -> bool:
        return await self._client.delete(self.abs(key)) is not None

    async def delete_prefix(self, prefix: str) -> int:
        found = await self._client.delete_prefix(self.abs(prefix))
        return int(found.deleted)

    async def txn(
        self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any] = ()
    ) -> bool:
        """Run a transaction built from ``self.tx``; keys in it must already be ``abs()``."""
        ok, _ = await self._client.transaction(
            compare=list(compare), success=list(success), failure=list(failure)
        )
        return bool(ok)

    def range_end(self, prefix: str) -> bytes:
        return aetcd_utils.prefix_range_end(self.abs(prefix))

    # -- leases --------------------------------------------------------------------------------
    async def grant(self, ttl: int) -> int:
        lease = await self._client.lease(ttl)
        return int(lease.id)

    async def refresh(self, lease_id: int) -> int:
        """Keep a lease alive once; returns the new TTL (<= 0: the lease is gone)."""
        reply = await self._client.refresh_lease(lease_id)
        return int(reply.TTL) if reply is not None else 0

    async def revoke(self, lease_id: int) -> None:
        await self._client.revoke_lease(lease_id)

    # -- watches -------------------------------------------------------------------------------
    async def watch_prefix(self, prefix: str, *, start_revision: int | None = None) -> _Watch:
        watch = await self._client.watch_prefix(self.abs(prefix), start_revision=start_revision)
        return _Watch(self, watch)


class _Watch:
    """``async for event in watch`` yields :class:`Event`; ``await watch.cancel()`` ends it."""

    def __init__(self, client: EtcdClient, watch: Any) -> None:
        self._client = client
        self._watch = watch

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for ev in self._watch:
            yield Event(str(ev.kind), self._client.rel(ev.kv.key), ev.kv.value, ev.kv.mod_revision)

    async def cancel(self) -> None:
        await self._watch.cancel()
