"""The metadata store behind the shared cache: what every file operation reads is cached.

Each client request checks permissions (the vfolder record and its ACL) and each upload its quota
limits; with this wrapper those reads come from the process or Redis copy, and every change made
through the wrapper invalidates the copies on all nodes.  Everything else passes straight
through.  Changes made to the store behind the daemons' backs are seen once the copies expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..core.records import AclEntry, Permission, VFolderRecord
from ..infra.cache import CacheKinds, SharedCache
from .store import MetadataStore


def _passthrough(name: str) -> Any:
    async def call(self: CachedMetadataStore, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.inner, name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = "Not cached: passed to the wrapped store as it is."
    return call


class CachedMetadataStore(MetadataStore):
    def __init__(self, inner: MetadataStore, cache: SharedCache, kinds: CacheKinds) -> None:
        self.inner = inner
        self.cache = cache
        self.kinds = kinds

    # -- cached reads ------------------------------------------------------------------------
    async def get_vfolder(self, volume: str, vfid: str) -> VFolderRecord | None:
        async def load() -> dict[str, Any] | None:
            record = await self.inner.get_vfolder(volume, vfid)
            return None if record is None else asdict(record)

        data = await self.cache.get(self.kinds.vfolder, f"{volume}/{vfid}", load)
        return None if data is None else VFolderRecord(**data)

    async def get_acl(self, volume: str, vfid: str) -> list[AclEntry]:
        async def load() -> list[list[Any]]:
            entries = await self.inner.get_acl(volume, vfid)
            return [[e.principal_type, e.principal, int(e.permission)] for e in entries]

        rows = await self.cache.get(self.kinds.acl, f"{volume}/{vfid}", load)
        return [AclEntry(kind, who, Permission(level)) for kind, who, level in rows]

    async def get_quota_limit(self, volume: str, qsid: str) -> int | None:
        async def load() -> int | None:
            return await self.inner.get_quota_limit(volume, qsid)

        limit: int | None = await self.cache.get(self.kinds.quota, f"{volume}/{qsid}", load)
        return limit

    # -- writes that invalidate --------------------------------------------------------------
    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None:
        await self.inner.set_quota_limit(volume, qsid, limit_bytes)
        await self.cache.invalidate(self.kinds.quota, f"{volume}/{qsid}")

    async def delete_quota_scope(self, volume: str, qsid: str) -> None:
        await self.inner.delete_quota_scope(volume, qsid)
        await self.cache.invalidate(self.kinds.quota, f"{volume}/{qsid}")

    async def register_vfolder(
        self,
        volume: str,
        vfid: str,
        quota_scope: str,
        *,
        owner: str | None = None,
        kind: str = "user",
    ) -> None:
        await self.inner.register_vfolder(volume, vfid, quota_scope, owner=owner, kind=kind)
        await self.cache.invalidate(self.kinds.vfolder, f"{volume}/{vfid}")

    async def unregister_vfolder(self, volume: str, vfid: str) -> None:
        await self.inner.unregister_vfolder(volume, vfid)
        for kind in (self.kinds.vfolder, self.kinds.acl, self.kinds.usage):
            await self.cache.invalidate(kind, f"{volume}/{vfid}")

    async def update_vfolder(
        self,
        volume: str,
        vfid: str,
        *,
        owner: str | None = ...,  # type: ignore[assignment]
        kind: str | None = None,
        limit_bytes: int | None = ...,  # type: ignore[assignment]
    ) -> None:
        await self.inner.update_vfolder(
            volume, vfid, owner=owner, kind=kind, limit_bytes=limit_bytes
        )
        await self.cache.invalidate(self.kinds.vfolder, f"{volume}/{vfid}")

    async def set_acl_entry(self, volume: str, vfid: str, entry: AclEntry) -> None:
        await self.inner.set_acl_entry(volume, vfid, entry)
        await self.cache.invalidate(self.kinds.acl, f"{volume}/{vfid}")

    async def replace_acl(
        self,
        volume: str,
        vfid: str,
        owner: str | None,
        kind: str,
        entries: Sequence[AclEntry],
    ) -> None:
        await self.inner.replace_acl(volume, vfid, owner, kind, entries)
        await self.cache.invalidate(self.kinds.vfolder, f"{volume}/{vfid}")
        await self.cache.invalidate(self.kinds.acl, f"{volume}/{vfid}")

    async def remove_acl_entry(
        self, volume: str, vfid: str, principal_type: str, principal: str
    ) -> bool:
        removed = await self.inner.remove_acl_entry(volume, vfid, principal_type, principal)
        await self.cache.invalidate(self.kinds.acl, f"{volume}/{vfid}")
        return removed

    # -- everything else, uncached -----------------------------------------------------------
    open = _passthrough("open")
    close = _passthrough("close")
    list_vfolders = _passthrough("list_vfolders")
    create_upload = _passthrough("create_upload")
    get_upload = _passthrough("get_upload")
    update_upload = _passthrough("update_upload")
    delete_upload = _passthrough("delete_upload")
    list_uploads = _passthrough("list_uploads")
    reserved_upload_bytes = _passthrough("reserved_upload_bytes")
    bucket_held = _passthrough("bucket_held")
    reserve = _passthrough("reserve")
    settle = _passthrough("settle")
    record_written = _passthrough("record_written")
    renew_holdings = _passthrough("renew_holdings")
    prune_ledger = _passthrough("prune_ledger")
    ledger_holders = _passthrough("ledger_holders")
    drop_holdings = _passthrough("drop_holdings")
    get_file_meta = _passthrough("get_file_meta")
    put_file_meta = _passthrough("put_file_meta")
    delete_file_meta = _passthrough("delete_file_meta")
    create_bgtask = _passthrough("create_bgtask")
    update_bgtask = _passthrough("update_bgtask")
    get_bgtask = _passthrough("get_bgtask")
    delete_bgtask = _passthrough("delete_bgtask")
    list_bgtasks = _passthrough("list_bgtasks")
    acquire_lease = _passthrough("acquire_lease")
    release_lease = _passthrough("release_lease")
    claim_vfolder_status = _passthrough("claim_vfolder_status")
    release_vfolder_status = _passthrough("release_vfolder_status")
    get_vfolder_status = _passthrough("get_vfolder_status")
    set_vfolder_retention = _passthrough("set_vfolder_retention")
    get_vfolder_retention = _passthrough("get_vfolder_retention")
    set_vfolder_versions = _passthrough("set_vfolder_versions")
    get_vfolder_versions = _passthrough("get_vfolder_versions")
    set_snapshot_policy = _passthrough("set_snapshot_policy")
    get_snapshot_policies = _passthrough("get_snapshot_policies")
