"""What a volume may ask of the daemon's books: the narrow ports its quota model and file metadata
need, owned here so that volumes depend on no metadata store.

A volume only stores.  Two things it cannot keep in the storage itself are looked up through
these ports: the limits and the shared ledger of a proxy-enforced quota (a write must be checked
chunk by chunk inside the volume's own write path), and file metadata where the filesystem has
no xattrs (a "sidecar").  The services layer implements them over the metadata store
(``services.books``); tests may hand any object with these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..core.records import QuotaBucket, Shortfall


class QuotaBook(Protocol):
    """Limits of proxy-enforced quotas and the ledger every worker and node shares."""

    async def get_quota_limit(self, volume: str, qsid: str) -> int | None: ...

    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None: ...

    async def delete_quota_scope(self, volume: str, qsid: str) -> None: ...

    async def get_vfolder_limit(self, volume: str, vfid: str) -> int | None: ...

    async def reserved_upload_bytes(self, volume: str, vfid_prefix: str) -> int: ...

    async def bucket_held(self, volume: str, bucket: QuotaBucket, now: float) -> int: ...

    async def reserve(
        self,
        volume: str,
        buckets: Sequence[QuotaBucket],
        holding: str,
        nbytes: int,
        holder: str,
        now: float,
        ttl: float,
    ) -> Shortfall | None: ...

    async def settle(self, volume: str, holding: str, written: int, now: float) -> None: ...

    async def record_written(
        self, volume: str, keys: Sequence[str], nbytes: int, now: float
    ) -> None: ...


class FileMetaBook(Protocol):
    """File metadata (checksums, content type, tags) where the storage cannot keep it."""

    async def get_file_meta(
        self, volume: str, vfid: str, relpath: str
    ) -> dict[str, Any] | None: ...

    async def put_file_meta(
        self, volume: str, vfid: str, relpath: str, meta: dict[str, Any]
    ) -> None: ...

    async def delete_file_meta(self, volume: str, vfid: str, relpath: str) -> None: ...


class VolumeBooks(QuotaBook, FileMetaBook, Protocol):
    """Everything a volume may look up beyond its storage."""
