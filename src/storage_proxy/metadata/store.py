"""What the daemon remembers beyond the bytes on disk.

The filesystem stays the truth for what exists (so existing Backend.AI volumes are served as they
are); the store keeps what a filesystem cannot say: proxy-enforced quota limits, the vfolder
registry with owners and ACLs, resumable upload sessions, and file metadata where a filesystem has
no xattrs.  :class:`MetadataStore` is the interface; ``sqlite.SqliteMetadataStore`` the embedded
default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..core.records import (
    AclEntry,
    BgTaskRecord,
    QuotaBucket,
    Shortfall,
    UploadSession,
    VFolderRecord,
)
from ..core.snapshot_policy import SnapshotPolicy


class MetadataStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- quota scopes ------------------------------------------------------------------------
    @abstractmethod
    async def get_quota_limit(self, volume: str, qsid: str) -> int | None: ...

    @abstractmethod
    async def set_quota_limit(self, volume: str, qsid: str, limit_bytes: int | None) -> None: ...

    @abstractmethod
    async def delete_quota_scope(self, volume: str, qsid: str) -> None: ...

    # -- vfolder registry and ACLs -----------------------------------------------------------
    @abstractmethod
    async def register_vfolder(
        self,
        volume: str,
        vfid: str,
        quota_scope: str,
        *,
        owner: str | None = None,
        kind: str = "user",
    ) -> None: ...

    @abstractmethod
    async def unregister_vfolder(self, volume: str, vfid: str) -> None: ...

    @abstractmethod
    async def get_vfolder(self, volume: str, vfid: str) -> VFolderRecord | None: ...

    @abstractmethod
    async def list_vfolders(self, volume: str | None = None) -> list[VFolderRecord]: ...

    @abstractmethod
    async def update_vfolder(
        self,
        volume: str,
        vfid: str,
        *,
        owner: str | None = ...,  # type: ignore[assignment]
        kind: str | None = None,
        limit_bytes: int | None = ...,  # type: ignore[assignment]
    ) -> None:
        """Change the given fields; ``...`` (the default) leaves a field as it is."""

    @abstractmethod
    async def get_acl(self, volume: str, vfid: str) -> list[AclEntry]: ...

    @abstractmethod
    async def set_acl_entry(self, volume: str, vfid: str, entry: AclEntry) -> None: ...

    @abstractmethod
    async def replace_acl(
        self,
        volume: str,
        vfid: str,
        owner: str | None,
        kind: str,
        entries: Sequence[AclEntry],
    ) -> None:
        """Set the owner and kind and replace every ACL entry, all in one transaction: a reader
        sees the old ACL or the new one, never a mix."""

    @abstractmethod
    async def remove_acl_entry(
        self, volume: str, vfid: str, principal_type: str, principal: str
    ) -> bool: ...

    # -- upload sessions ---------------------------------------------------------------------
    @abstractmethod
    async def create_upload(
        self, session: UploadSession, buckets: Sequence[QuotaBucket] = (), now: float = 0.0
    ) -> Shortfall | None:
        """Record the session if its declared length fits every bucket (checked and recorded in
        one transaction, so concurrent creations on any process never jointly overfill one);
        otherwise record nothing and return the bucket that is short."""

    @abstractmethod
    async def get_upload(self, upload_id: str) -> UploadSession | None: ...

    @abstractmethod
    async def update_upload(
        self,
        upload_id: str,
        *,
        offset: int,
        length: int | None,
        buckets: Sequence[QuotaBucket] = (),
        now: float = 0.0,
    ) -> Shortfall | None:
        """Record the offset (and a length declared late, if it fits ``buckets``, checked as in
        ``create_upload`` against every other holding)."""

    @abstractmethod
    async def delete_upload(self, upload_id: str) -> None: ...

    @abstractmethod
    async def list_uploads(
        self, *, volume: str | None = None, expired_before: float | None = None
    ) -> list[UploadSession]: ...

    @abstractmethod
    async def reserved_upload_bytes(self, volume: str, vfid_prefix: str) -> int:
        """Bytes held by open uploads into vfids starting with the prefix (declared lengths)."""

    # -- the quota ledger: holdings shared by every worker process and node ------------------
    @abstractmethod
    async def bucket_held(self, volume: str, bucket: QuotaBucket, now: float) -> int:
        """Bytes promised against a bucket beyond its scanned usage: open uploads, writes in
        flight (unexpired holdings) and writes finished since the scan began."""

    @abstractmethod
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
        """Add ``nbytes`` to the in-flight ``holding`` if every bucket has room (one
        transaction); otherwise change nothing and return the first bucket that is short."""

    @abstractmethod
    async def settle(self, volume: str, holding: str, written: int, now: float) -> None:
        """End a holding: its bytes stop being in flight and ``written`` of them count as
        written (into the same buckets) until a scan sees them."""

    @abstractmethod
    async def record_written(
        self, volume: str, keys: Sequence[str], nbytes: int, now: float
    ) -> None:
        """Count ``nbytes`` as written into the buckets (a published upload)."""

    @abstractmethod
    async def renew_holdings(self, holder: str, now: float, ttl: float) -> None:
        """Keep the holder's in-flight holdings alive (a crashed holder's expire by themselves)."""

    @abstractmethod
    async def ledger_holders(self, prefix: str) -> list[str]:
        """Holders (``<node>/<pid>``) starting with ``prefix`` that hold something in flight."""

    @abstractmethod
    async def drop_holdings(self, holder: str) -> int:
        """Forget a holder's in-flight holdings (a process known to be dead)."""

    @abstractmethod
    async def prune_ledger(self, written_before: float, now: float) -> int:
        """Drop expired holdings and written entries older than ``written_before``."""

    # -- file metadata (sidecar where the filesystem has no xattrs) ---------------------------
    @abstractmethod
    async def get_file_meta(
        self, volume: str, vfid: str, relpath: str
    ) -> dict[str, Any] | None: ...

    @abstractmethod
    async def put_file_meta(
        self, volume: str, vfid: str, relpath: str, meta: dict[str, Any]
    ) -> None: ...

    @abstractmethod
    async def delete_file_meta(self, volume: str, vfid: str, relpath: str) -> None: ...

    # -- background tasks, job leases, busy vfolders, retention ------------------------------
    @abstractmethod
    async def create_bgtask(self, record: BgTaskRecord) -> None: ...

    @abstractmethod
    async def update_bgtask(
        self, task_id: str, fields: dict[str, Any], *, only_if_live: bool = False
    ) -> bool:
        """Set columns of a task; ``only_if_live``: only while pending/running. True if changed."""

    @abstractmethod
    async def get_bgtask(self, task_id: str) -> BgTaskRecord | None: ...

    @abstractmethod
    async def delete_bgtask(self, task_id: str) -> None: ...

    @abstractmethod
    async def list_bgtasks(
        self,
        *,
        kind: str | None = None,
        statuses: tuple[str, ...] = (),
        owner: str | None = None,
        limit: int = 100,
    ) -> list[BgTaskRecord]:
        """Newest first."""

    @abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take (or extend, if ``holder`` has it) the named lease unless another holds it."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str, keep_until: float | None) -> None:
        """Give the lease up now, or keep it (idle) until ``keep_until``."""

    @abstractmethod
    async def claim_vfolder_status(
        self, volume: str, vfid: str, status: str, task_id: str
    ) -> str | None:
        """Mark a vfolder busy for a live task; returns the status in the way, None if claimed."""

    @abstractmethod
    async def release_vfolder_status(self, task_id: str) -> None: ...

    @abstractmethod
    async def get_vfolder_status(self, volume: str, vfid: str) -> tuple[str, str] | None:
        """``(status, task_id)`` while a live task holds the vfolder, else None."""

    @abstractmethod
    async def set_vfolder_retention(self, volume: str, vfid: str, days: float | None) -> None: ...

    @abstractmethod
    async def get_vfolder_retention(self, volume: str) -> dict[str, float]:
        """vfid → retention days of the vfolders of ``volume`` that have their own setting."""

    @abstractmethod
    async def set_vfolder_versions(self, volume: str, vfid: str, keep: int) -> None:
        """How many versions of each file the vfolder keeps (0: none, the default)."""

    @abstractmethod
    async def get_vfolder_versions(self, volume: str, vfid: str) -> int: ...

    @abstractmethod
    async def set_snapshot_policy(
        self, volume: str, target: str, policy: SnapshotPolicy | None
    ) -> None:
        """A vfolder's (``target``: its vfid) or a quota scope's (its qsid) snapshot policy;
        None clears it."""

    @abstractmethod
    async def get_snapshot_policies(self, volume: str) -> dict[str, SnapshotPolicy]:
        """target (vfid or qsid) → policy, for the vfolders and scopes of ``volume`` that have
        one."""
