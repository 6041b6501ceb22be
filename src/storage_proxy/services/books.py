"""The volumes' books (``volumes.books``) kept in the metadata store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.records import QuotaBucket, Shortfall
from ..metadata.store import MetadataStore


class MetadataBooks:
    """Implements :class:`storage_proxy.volumes.books.VolumeBooks` over a metadata store."""

    def __init__(self, metadata: MetadataStore) -> None:
        self._m = metadata

    async def get_quota_limit(self, volume: str, qsid: str) -> int | None:
        return await self._m.get_quota_limit(volume, qsid)

    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None:
        await self._m.set_quota_limit(volume, qsid, limit_bytes)

    async def delete_quota_scope(self, volume: str, qsid: str) -> None:
        await self._m.delete_quota_scope(volume, qsid)

    async def get_vfolder_limit(self, volume: str, vfid: str) -> int | None:
        record = await self._m.get_vfolder(volume, vfid)
        return None if record is None else record.limit_bytes

    async def reserved_upload_bytes(self, volume: str, vfid_prefix: str) -> int:
        return await self._m.reserved_upload_bytes(volume, vfid_prefix)

    async def bucket_held(self, volume: str, bucket: QuotaBucket, now: float) -> int:
        return await self._m.bucket_held(volume, bucket, now)

    async def reserve(
        self,
        volume: str,
        buckets: Sequence[QuotaBucket],
        holding: str,
        nbytes: int,
        holder: str,
        now: float,
        ttl: float,
    ) -> Shortfall | None:
        return await self._m.reserve(volume, buckets, holding, nbytes, holder, now, ttl)

    async def settle(self, volume: str, holding: str, written: int, now: float) -> None:
        await self._m.settle(volume, holding, written, now)

    async def record_written(
        self, volume: str, keys: Sequence[str], nbytes: int, now: float
    ) -> None:
        await self._m.record_written(volume, keys, nbytes, now)

    async def get_file_meta(self, volume: str, vfid: str, relpath: str) -> dict[str, Any] | None:
        return await self._m.get_file_meta(volume, vfid, relpath)

    async def put_file_meta(
        self, volume: str, vfid: str, relpath: str, meta: dict[str, Any]
    ) -> None:
        await self._m.put_file_meta(volume, vfid, relpath, meta)

    async def delete_file_meta(self, volume: str, vfid: str, relpath: str) -> None:
        await self._m.delete_file_meta(volume, vfid, relpath)
