"""Background tasks, job leases, busy vfolders and retention for :class:`EtcdMetadataStore`.

Why compare-and-swap everywhere: several nodes run jobs against one etcd, so "take the lease
unless someone else holds it" and "mark busy unless a live task holds it" must be atomic; each
is a read followed by a transaction guarded by the key's create/mod revision, retried on a race.

Keys (under ``meta/``): ``bgtask/<id>``, ``joblease/<name>``, ``vfstatus/<vol>/<vfid>``,
``retention/<vol>/<vfid>``, ``versions/<vol>/<vfid>``, ``snappolicy/<vol>/<vfid or qsid>``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from ..core.errors import AlreadyExists
from ..core.records import BgTaskRecord
from ..core.snapshot_policy import SnapshotPolicy
from ..infra.etcd import Entry, EtcdClient, join, unquote_part

_LIVE = ("pending", "running")
_BGTASK_FIELDS = frozenset(f.name for f in fields(BgTaskRecord)) - {"id"}
_ATTEMPTS = 50


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class EtcdJobsMixin:
    client: EtcdClient
    prefix: str

    def _jk(self, kind: str, *parts: str) -> str:
        return f"{self.prefix}{kind}/{join(*parts)}"

    async def _put_if(self, key: str, entry: Entry | None, value: bytes | None) -> bool:
        """Put (or delete, if ``value`` is None) only if ``key`` is still as ``entry`` saw it."""
        c, tx = self.client, self.client.tx
        k = c.abs(key)
        cmp = tx.create(k) == 0 if entry is None else tx.mod(k) == entry.mod_revision
        return await c.txn([cmp], [tx.delete(k) if value is None else tx.put(k, value)])

    # -- background tasks --------------------------------------------------------------------
    async def create_bgtask(self, record: BgTaskRecord) -> None:
        if not await self._put_if(self._jk("bgtask", record.id), None, _dump(asdict(record))):
            raise AlreadyExists(f"bgtask {record.id} already exists")

    async def update_bgtask(
        self, task_id: str, fields: dict[str, Any], *, only_if_live: bool = False
    ) -> bool:
        if not set(fields) <= _BGTASK_FIELDS:
            raise ValueError(f"unknown bgtask fields: {list(fields)}")
        key = self._jk("bgtask", task_id)
        for _ in range(_ATTEMPTS):
            entry = await self.client.get(key)
            if entry is None:
                return False
            data = json.loads(entry.value)
            if only_if_live and data["status"] not in _LIVE:
                return False
            if await self._put_if(key, entry, _dump({**data, **fields})):
                return True
        raise RuntimeError(f"etcd: too much contention on {key}")

    async def get_bgtask(self, task_id: str) -> BgTaskRecord | None:
        entry = await self.client.get(self._jk("bgtask", task_id))
        return None if entry is None else BgTaskRecord(**json.loads(entry.value))

    async def delete_bgtask(self, task_id: str) -> None:
        await self.client.delete(self._jk("bgtask", task_id))

    async def list_bgtasks(
        self,
        *,
        kind: str | None = None,
        statuses: tuple[str, ...] = (),
        owner: str | None = None,
        limit: int = 100,
    ) -> list[BgTaskRecord]:
        found = await self.client.get_prefix(f"{self.prefix}bgtask/")
        tasks = [BgTaskRecord(**json.loads(e.value)) for e in found]
        tasks = [
            t
            for t in tasks
            if (kind is None or t.kind == kind)
            and (owner is None or t.owner == owner)
            and (not statuses or t.status in statuses)
        ]
        tasks.sort(key=lambda t: t.created_at, reverse=True)
        return tasks[:limit]

    async def _is_live(self, task_id: str) -> bool:
        task = await self.get_bgtask(task_id)
        return task is not None and task.status in _LIVE

    # -- job leases ----------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        key = self._jk("joblease", name)
        value = _dump({"holder": holder, "expires_at": now + ttl})
        for _ in range(_ATTEMPTS):
            entry = await self.client.get(key)
            if entry is not None:
                cur = json.loads(entry.value)
                if cur["holder"] != holder and cur["expires_at"] >= now:
                    return False
            if await self._put_if(key, entry, value):
                return True
        return False

    async def release_lease(self, name: str, holder: str, keep_until: float | None) -> None:
        key = self._jk("joblease", name)
        for _ in range(_ATTEMPTS):
            entry = await self.client.get(key)
            if entry is None or json.loads(entry.value)["holder"] != holder:
                return
            value = (
                None if keep_until is None else _dump({"holder": holder, "expires_at": keep_until})
            )
            if await self._put_if(key, entry, value):
                return

    # -- busy vfolders -------------------------------------------------------------------------
    async def claim_vfolder_status(
        self, volume: str, vfid: str, status: str, task_id: str
    ) -> str | None:
        key = self._jk("vfstatus", volume, vfid)
        value = _dump({"status": status, "task_id": task_id})
        for _ in range(_ATTEMPTS):
            entry = await self.client.get(key)
            if entry is not None:
                cur = json.loads(entry.value)
                if await self._is_live(cur["task_id"]):
                    return None if cur["task_id"] == task_id else str(cur["status"])
            if await self._put_if(key, entry, value):
                return None
        raise RuntimeError(f"etcd: too much contention on {key}")

    async def release_vfolder_status(self, task_id: str) -> None:
        for entry in await self.client.get_prefix(f"{self.prefix}vfstatus/"):
            if json.loads(entry.value)["task_id"] == task_id:
                await self._put_if(entry.key, entry, None)

    async def get_vfolder_status(self, volume: str, vfid: str) -> tuple[str, str] | None:
        entry = await self.client.get(self._jk("vfstatus", volume, vfid))
        if entry is None:
            return None
        cur = json.loads(entry.value)
        if not await self._is_live(cur["task_id"]):
            return None
        return str(cur["status"]), str(cur["task_id"])

    # -- retention -----------------------------------------------------------------------------
    async def set_vfolder_retention(self, volume: str, vfid: str, days: float | None) -> None:
        key = self._jk("retention", volume, vfid)
        if days is None:
            await self.client.delete(key)
        else:
            await self.client.put(key, _dump(float(days)))

    async def set_vfolder_versions(self, volume: str, vfid: str, keep: int) -> None:
        key = self._jk("versions", volume, vfid)
        if keep <= 0:
            await self.client.delete(key)
        else:
            await self.client.put(key, _dump(int(keep)))

    async def get_vfolder_versions(self, volume: str, vfid: str) -> int:
        entry = await self.client.get(self._jk("versions", volume, vfid))
        return 0 if entry is None else int(json.loads(entry.value))

    async def get_vfolder_retention(self, volume: str) -> dict[str, float]:
        prefix = f"{self._jk('retention', volume)}/"
        return {
            # the last component is the percent-quoted vfid
            unquote_part(e.key[len(prefix) :]): float(json.loads(e.value))
            for e in await self.client.get_prefix(prefix)
        }

    # -- snapshot policies ---------------------------------------------------------------------
    async def set_snapshot_policy(
        self, volume: str, target: str, policy: SnapshotPolicy | None
    ) -> None:
        key = self._jk("snappolicy", volume, target)
        if policy is None:
            await self.client.delete(key)
        else:
            await self.client.put(key, _dump(policy.to_json()))

    async def get_snapshot_policies(self, volume: str) -> dict[str, SnapshotPolicy]:
        prefix = f"{self._jk('snappolicy', volume)}/"
        return {
            unquote_part(e.key[len(prefix) :]): SnapshotPolicy.from_json(json.loads(e.value))
            for e in await self.client.get_prefix(prefix)
        }
