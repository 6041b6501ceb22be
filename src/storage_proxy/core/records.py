"""Records the layers pass between them: a vfolder's registry entry, permissions and ACL entries,
upload sessions, background tasks, and what the quota ledger checks against."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class VFolderRecord:
    volume: str
    vfid: str
    quota_scope: str
    created_at: float
    owner: str | None = None  # a user id or a group id, as ``kind`` says
    kind: str = "user"  # "user" or "group"
    limit_bytes: int | None = None  # optional per-vfolder quota


class Permission(enum.IntEnum):
    """Ordered so that a higher grant includes every lower one."""

    NONE = 0
    RO = 1
    RW = 2
    RWD = 3

    @classmethod
    def parse(cls, text: str) -> Permission:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"permission must be one of ro, rw, rwd: {text!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AclEntry:
    principal_type: str  # "user" or "group"
    principal: str
    permission: Permission

    def to_json(self) -> dict[str, str]:
        return {
            "principal": f"{self.principal_type}:{self.principal}",
            "permission": self.permission.label,
        }


@dataclass(slots=True)
class UploadSession:
    """A resumable upload; its bytes so far live in the volume's staging area."""

    id: str
    volume: str
    vfid: str
    relpath: str
    length: int | None  # None until the client declares it (tus creation-defer-length)
    offset: int
    created_at: float
    expires_at: float
    owner: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QuotaBucket:
    """One limit a write is checked against, as a quota model sees it now.

    The ledger adds what the scan could not see: open uploads' declared lengths, bytes of writes
    in flight (on any worker process or node), and bytes written since the scan began.
    """

    key: str  # the quota scope id or the vfid the limit is on
    upload_prefix: str  # upload sessions whose vfid starts with this count against it
    limit: int
    used: int  # bytes on the storage at the last scan
    scanned_at: float  # when that scan began: bytes written from then on count on top


@dataclass(frozen=True, slots=True)
class Shortfall:
    """A bucket a reservation did not fit into, and the bytes it had left."""

    key: str
    remaining: int


@dataclass(slots=True)
class BgTaskRecord:
    """A background task's persisted state: what ``GET /bgtask/{id}`` reports."""

    id: str
    kind: str
    status: str  # pending, running, done, failed, cancelled, interrupted
    owner: str  # "<node-id>/<pid>": who runs it (a dead owner means interrupted)
    created_at: float
    updated_at: float
    current: float = 0
    total: float | None = None
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: dict[str, Any] | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
