"""Identifiers and value types shared by every layer."""

from __future__ import annotations

import enum
import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from .errors import InvalidParameter

#: How many distinct vfolder and scope ids keep their parsed object.
IDS_CACHED = 8192
#: ``project:<uuid with hyphens>/<uuid hex>``: the longest canonical id text.
CANONICAL_ID_LENGTH = len("project:") + 36 + 1 + 32


class QuotaScopeType(enum.StrEnum):
    USER = "user"
    PROJECT = "project"


@dataclass(frozen=True, slots=True)
class QuotaScopeID:
    """Whose space it is: ``user:<uuid>`` or ``project:<uuid>``."""

    scope_type: QuotaScopeType
    scope_id: uuid.UUID
    #: its text, made once (ids are looked up and logged on every request)
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.scope_type.value}:{self.scope_id}")

    @classmethod
    def parse(cls, raw: str) -> QuotaScopeID:
        if not isinstance(raw, str) or ":" not in raw:
            raise InvalidParameter(
                f"quota scope id must be 'user:<uuid>' or 'project:<uuid>': {raw!r}"
            )
        return _parse_scope(raw) if len(raw) <= CANONICAL_ID_LENGTH else cls._parse(raw)

    @classmethod
    def _parse(cls, raw: str) -> QuotaScopeID:
        kind, _, ident = raw.partition(":")
        try:
            return cls(QuotaScopeType(kind), uuid.UUID(ident))
        except ValueError:
            raise InvalidParameter(
                f"quota scope id must be 'user:<uuid>' or 'project:<uuid>': {raw!r}"
            ) from None

    @property
    def pathname(self) -> str:
        """The directory name of this scope on a volume (Backend.AI layout)."""
        return self.scope_id.hex

    def __str__(self) -> str:
        return self._text


@dataclass(frozen=True, slots=True)
class VFolderID:
    """``<quota-scope>/<uuid-hex>``."""

    quota_scope_id: QuotaScopeID
    folder_id: uuid.UUID
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.quota_scope_id}/{self.folder_id.hex}")

    @classmethod
    def parse(cls, raw: str) -> VFolderID:
        if not isinstance(raw, str) or "/" not in raw:
            raise InvalidParameter(f"vfid must be '<quota-scope-id>/<uuid-hex>': {raw!r}")
        return _parse_vfid(raw) if len(raw) <= CANONICAL_ID_LENGTH else cls._parse(raw)

    @classmethod
    def _parse(cls, raw: str) -> VFolderID:
        qs, _, ident = raw.rpartition("/")
        try:
            folder_id = uuid.UUID(ident)
        except ValueError:
            raise InvalidParameter(f"vfid must be '<quota-scope-id>/<uuid-hex>': {raw!r}") from None
        return cls(QuotaScopeID.parse(qs), folder_id)

    @property
    def relative_parts(self) -> tuple[str, str, str, str]:
        """Path parts below the volume root: ``<scope-hex>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>``."""
        h = self.folder_id.hex
        return (self.quota_scope_id.pathname, h[0:2], h[2:4], h[4:])

    def __str__(self) -> str:
        return self._text


# Ids are immutable, and every request names one (a token's claims, a URL): the same text is
# parsed once (two UUIDs cost about 7 us) and its object shared; an error is raised again each
# time (lru_cache keeps results, not exceptions).  Only texts as long as a canonical id are kept
# (uuid.UUID also takes braces, "urn:uuid:" and any number of hyphens: a tenant could otherwise
# fill the caches with long spellings of one id).
_parse_scope = functools.lru_cache(maxsize=IDS_CACHED)(QuotaScopeID._parse)
_parse_vfid = functools.lru_cache(maxsize=IDS_CACHED)(VFolderID._parse)


class Capability(enum.StrEnum):
    """What a backend can do; services ask for a flag rather than a backend name."""

    VFOLDER = "vfolder"
    QUOTA = "quota"  # quota scopes with limits (native or proxy-enforced)
    NATIVE_QUOTA = "native-quota"  # the storage itself enforces the limits
    FAST_USAGE = "fast-usage"  # usage without walking the tree
    NATIVE_CLONE = "native-clone"
    PRESIGN = "presign"
    XATTR = "xattr"
    LOCAL_PATH = "local-path"  # files have a local path (sendfile fast path)
    SNAPSHOT = "snapshot"  # snapshots of vfolders (``volumes.snapshots``)
    NATIVE_SNAPSHOT = "native-snapshot"  # taken by the storage at once, copy-on-write
    SNAPSHOT_QUOTA = "snapshot-quota"  # what a snapshot holds counts against the scope's quota
    FILE_VERSIONS = "file-versions"  # replaced and deleted files kept as versions


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    limit_bytes: int


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    used_bytes: int
    limit_bytes: int | None


@dataclass(frozen=True, slots=True)
class VFolderUsage:
    """Files (everything but directories) and their bytes; directories counted apart, since
    Backend.AI's ``file_count`` counts every entry and its bytes include directories' sizes."""

    file_count: int
    used_bytes: int
    dir_count: int = 0
    dir_bytes: int = 0


@dataclass(frozen=True, slots=True)
class FSUsage:
    capacity_bytes: int
    used_bytes: int


class DirEntryType(enum.StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"
    SYMLINK = "SYMLINK"
    #: A FIFO, socket or device: listed, never read (downloads refuse it, archives leave it out).
    SPECIAL = "SPECIAL"


@dataclass(frozen=True, slots=True)
class Stat:
    size: int
    mode: int
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    path: str  # relative to the vfolder root, POSIX separators
    type: DirEntryType
    stat: Stat
    symlink_target: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type.value,
            "stat": {
                "mode": self.stat.mode,
                "size": self.stat.size,
                "created": self.stat.created.isoformat(),
                "modified": self.stat.modified.isoformat(),
            },
            "symlink_target": self.symlink_target,
        }


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What the file API tells about a file: its stat plus what was recorded when it was written.

    Checksums are only reported while the file is unchanged since they were computed (same size
    and mtime); a file changed behind the proxy's back has ``sha256 = None``.
    """

    size: int
    modified: datetime
    sha256: str | None = None
    md5: str | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        if self.md5:
            return f'"{self.md5}"'
        return f'"{int(self.modified.timestamp() * 1e6):x}-{self.size:x}"'

    def to_json(self, path: str) -> dict[str, object]:
        return {
            "path": path,
            "size": self.size,
            "modified": self.modified.isoformat(),
            "etag": self.etag,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "tags": self.tags,
        }
