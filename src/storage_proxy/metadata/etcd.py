"""The metadata store in etcd, for several proxy nodes sharing one vfolder registry.

Why etcd: every node must see the same quota limits, ACLs and upload sessions; etcd gives
linearizable reads and compare-and-swap transactions, which is all this interface needs.

Layout under ``<namespace root>/meta/`` (components percent-quoted, values JSON):
``quota/<vol>/<qsid>``, ``vfolder/<vol>/<vfid>``, ``acl/<vol>/<vfid>/<type>:<principal>``,
``upload/<id>``, ``file/<vol>/<vfid>/<relpath>``; the quota ledger in ``etcd_ledger``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..core.records import AclEntry, Permission, UploadSession, VFolderRecord
from ..infra.etcd import EtcdClient, join
from .etcd_jobs import EtcdJobsMixin
from .etcd_ledger import EtcdLedgerMixin
from .store import MetadataStore

_CAS_ATTEMPTS = 50


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class EtcdMetadataStore(EtcdLedgerMixin, EtcdJobsMixin, MetadataStore):
    def __init__(self, client: EtcdClient, *, owns_client: bool = False, prefix: str = "meta/"):
        self.client = client
        self.owns_client = owns_client
        self.prefix = prefix

    @classmethod
    def from_config(cls, etcd_cfg: Mapping[str, Any]) -> EtcdMetadataStore:
        """A store with its own connection, from a validated ``[etcd]`` section."""
        return cls(EtcdClient.from_config(etcd_cfg), owns_client=True)

    def _k(self, kind: str, *parts: str, dir: bool = False) -> str:
        return f"{self.prefix}{kind}/{join(*parts)}{'/' if dir else ''}"

    async def open(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        if self.owns_client:
            await self.client.close()

    async def _get_json(self, key: str) -> Any:
        entry = await self.client.get(key)
        return None if entry is None else json.loads(entry.value)

    async def _cas_update(self, key: str, change: Callable[[Any], Any]) -> bool:
        """Read-modify-write guarded by the key's mod revision; False if the key is missing."""
        tx = self.client.tx
        for _ in range(_CAS_ATTEMPTS):
            entry = await self.client.get(key)
            if entry is None:
                return False
            new = _dump(change(json.loads(entry.value)))
            abs_key = self.client.abs(key)
            if await self.client.txn(
                [tx.mod(abs_key) == entry.mod_revision], [tx.put(abs_key, new)]
            ):
                return True
        raise RuntimeError(f"etcd: too much contention on {key}")

    # -- quota scopes ------------------------------------------------------------------------
    async def get_quota_limit(self, volume: str, qsid: str) -> int | None:
        data = await self._get_json(self._k("quota", volume, qsid))
        return None if data is None else data["limit_bytes"]

    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None:
        value = {"limit_bytes": limit_bytes, "updated_at": time.time()}
        await self.client.put(self._k("quota", volume, qsid), _dump(value))

    async def delete_quota_scope(self, volume: str, qsid: str) -> None:
        await self.client.delete(self._k("quota", volume, qsid))

    # -- vfolders ----------------------------------------------------------------------------
    async def register_vfolder(
        self,
        volume: str,
        vfid: str,
        quota_scope: str,
        *,
        owner: str | None = None,
        kind: str = "user",
    ) -> None:
        record = VFolderRecord(volume, vfid, quota_scope, time.time(), owner, kind)
        await self.client.put(self._k("vfolder", volume, vfid), _dump(asdict(record)))

    async def unregister_vfolder(self, volume: str, vfid: str) -> None:
        """The record, its ACL, file metadata and retention go in one transaction."""
        c, tx = self.client, self.client.tx
        acl, files = self._k("acl", volume, vfid, dir=True), self._k("file", volume, vfid, dir=True)
        await c.txn(
            [],
            [
                tx.delete(c.abs(self._k("vfolder", volume, vfid))),
                tx.delete(c.abs(acl), range_end=c.range_end(acl)),
                tx.delete(c.abs(files), range_end=c.range_end(files)),
                tx.delete(c.abs(self._k("retention", volume, vfid))),
                tx.delete(c.abs(self._k("versions", volume, vfid))),
                tx.delete(c.abs(self._k("snappolicy", volume, vfid))),
            ],
        )

    async def get_vfolder(self, volume: str, vfid: str) -> VFolderRecord | None:
        data = await self._get_json(self._k("vfolder", volume, vfid))
        return None if data is None else VFolderRecord(**data)

    async def list_vfolders(self, volume: str | None = None) -> list[VFolderRecord]:
        where = self._k("vfolder", volume, dir=True) if volume is not None else None
        found = await self.client.get_prefix(where or f"{self.prefix}vfolder/")
        records = [VFolderRecord(**json.loads(e.value)) for e in found]
        return sorted(records, key=lambda r: r.created_at)

    async def update_vfolder(
        self,
        volume: str,
        vfid: str,
        *,
        owner: str | None = ...,  # type: ignore[assignment]
        kind: str | None = None,
        limit_bytes: int | None = ...,  # type: ignore[assignment]
    ) -> None:
        fields: dict[str, Any] = {}
        if owner is not ...:
            fields["owner"] = owner
        if kind is not None:
            fields["kind"] = kind
        if limit_bytes is not ...:
            fields["limit_bytes"] = limit_bytes
        if fields:
            await self._cas_update(self._k("vfolder", volume, vfid), lambda d: {**d, **fields})

    async def get_acl(self, volume: str, vfid: str) -> list[AclEntry]:
        entries = await self.client.get_prefix(self._k("acl", volume, vfid, dir=True))
        acl = []
        for e in entries:
            d = json.loads(e.value)
            acl.append(AclEntry(d["principal_type"], d["principal"], Permission(d["permission"])))
        return sorted(acl, key=lambda a: (a.principal_type, a.principal))

    def _acl_key(self, volume: str, vfid: str, principal_type: str, principal: str) -> str:
        return self._k("acl", volume, vfid, f"{principal_type}:{principal}")

    async def set_acl_entry(self, volume: str, vfid: str, entry: AclEntry) -> None:
        value = {
            "principal_type": entry.principal_type,
            "principal": entry.principal,
            "permission": int(entry.permission),
        }
        key = self._acl_key(volume, vfid, entry.principal_type, entry.principal)
        await self.client.put(key, _dump(value))

    async def replace_acl(
        self,
        volume: str,
        vfid: str,
        owner: str | None,
        kind: str,
        entries: Sequence[AclEntry],
    ) -> None:
        """The vfolder record (guarded by its revision), every old entry and every new one go in
        one transaction."""
        c, tx = self.client, self.client.tx
        key = self._k("vfolder", volume, vfid)
        acl = self._k("acl", volume, vfid, dir=True)
        for _ in range(_CAS_ATTEMPTS):
            entry = await c.get(key)
            if entry is None:
                return
            record = {**json.loads(entry.value), "owner": owner, "kind": kind}
            puts = [
                tx.put(
                    c.abs(self._acl_key(volume, vfid, e.principal_type, e.principal)),
                    _dump(
                        {
                            "principal_type": e.principal_type,
                            "principal": e.principal,
                            "permission": int(e.permission),
                        }
                    ),
                )
                for e in entries
            ]
            ops = [
                tx.put(c.abs(key), _dump(record)),
                tx.delete(c.abs(acl), range_end=c.range_end(acl)),
            ]
            if await c.txn([tx.mod(c.abs(key)) == entry.mod_revision], [*ops, *puts]):
                return
        raise RuntimeError(f"etcd: too much contention on {key}")

    async def remove_acl_entry(
        self, volume: str, vfid: str, principal_type: str, principal: str
    ) -> bool:
        return await self.client.delete(self._acl_key(volume, vfid, principal_type, principal))

    # -- uploads -----------------------------------------------------------------------------
    async def get_upload(self, upload_id: str) -> UploadSession | None:
        data = await self._get_json(self._k("upload", upload_id))
        return None if data is None else UploadSession(**data)

    async def delete_upload(self, upload_id: str) -> None:
        await self.client.delete(self._k("upload", upload_id))

    async def list_uploads(
        self, *, volume: str | None = None, expired_before: float | None = None
    ) -> list[UploadSession]:
        found = await self.client.get_prefix(f"{self.prefix}upload/")
        sessions = [UploadSession(**json.loads(e.value)) for e in found]
        if volume is not None:
            sessions = [s for s in sessions if s.volume == volume]
        if expired_before is not None:
            sessions = [s for s in sessions if s.expires_at < expired_before]
        return sorted(sessions, key=lambda s: s.created_at)

    # -- file metadata -----------------------------------------------------------------------
    async def get_file_meta(self, volume: str, vfid: str, relpath: str) -> dict[str, Any] | None:
        data = await self._get_json(self._k("file", volume, vfid, relpath))
        return None if data is None else dict(data)

    async def put_file_meta(
        self, volume: str, vfid: str, relpath: str, meta: dict[str, Any]
    ) -> None:
        await self.client.put(self._k("file", volume, vfid, relpath), _dump(meta))

    async def delete_file_meta(self, volume: str, vfid: str, relpath: str) -> None:
        await self.client.delete(self._k("file", volume, vfid, relpath))
