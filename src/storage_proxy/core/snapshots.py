"""Snapshots of vfolders and versions of files: the values every layer passes about them.

A snapshot is known by its id, which is also its name on the storage (a ``.snap`` entry on
CephFS, the suffix of an ONTAP snapshot's name, a directory or a manifest of the proxy's own).
So the storage stays the one truth about which snapshots exist: nothing is recorded elsewhere
that could disagree with it.  The id is checked here once, so no layer below ever sees one that
could name a path (``..``, ``/``, a dot-name).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidParameter
from .files import KeepVersions
from .paths import RelPath

_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: What a backend may use as a version id (posix: "<ns hex>-<random hex>", s3: its VersionId).
#: S3 servers pick any of these characters first (Ceph RGW's ids may start with ``-`` or ``.``);
#: ``.`` and ``..`` alone are refused so an id can never name a directory step.
_VERSION_ID = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$")
#: Snapshots a policy takes are named with this prefix; a policy prunes only its own.
POLICY_PREFIX = "auto-"


def check_snapshot_id(raw: object) -> str:
    """A snapshot id from a caller: letters, digits, ``_`` and ``-``, at most 64."""
    if not isinstance(raw, str) or not _SNAPSHOT_ID.match(raw):
        raise InvalidParameter(
            "a snapshot name is 1 to 64 letters, digits, '_' or '-', starting with a letter or "
            f"digit: {raw!r}"
        )
    return raw


def check_version_id(raw: object) -> str:
    if not isinstance(raw, str) or not _VERSION_ID.match(raw):
        raise InvalidParameter(f"not a version id: {raw!r}")
    return raw


def new_snapshot_id(prefix: str = "snap-", now: datetime | None = None) -> str:
    """``snap-20250102T030405Z-1a2b``: sortable by time, unique enough within a second."""
    now = now or datetime.now(UTC)
    return f"{prefix}{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    id: str
    created: datetime
    #: Bytes the snapshot holds (its files' sizes), where the storage can say cheaply.
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.id,
            "name": self.id,
            "created": self.created.isoformat(),
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class FileVersion:
    """A kept version of a file."""

    id: str
    size: int
    modified: datetime  # when its content was written
    kept: datetime  # when it stopped being the current file
    sha256: str | None = None
    who: str | None = None  # whose operation replaced or deleted it
    reason: str = "overwrite"  # overwrite, move, delete or restore

    def to_json(self) -> dict[str, Any]:
        return {
            "version_id": self.id,
            "size": self.size,
            "modified": self.modified.isoformat(),
            "kept": self.kept.isoformat(),
            "sha256": self.sha256,
            "who": self.who,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    """What a snapshot restore brings back, and where."""

    #: Files and directories to restore; empty: the whole vfolder.
    relpaths: tuple[RelPath, ...] = ()
    #: A new directory to restore into (it must not exist); None: into place.
    into: RelPath | None = None
    #: Restoring into place keeps the files it replaces as versions (a vfolder's versions).
    keep: KeepVersions | None = None


@dataclass(slots=True)
class Progress:
    """A counter a volume advances from its worker threads and the service reports (bytes, or
    entries where bytes are not known)."""

    done: int = 0
    total: int | None = None

    def add(self, n: int) -> None:
        self.done += n


@dataclass(slots=True)
class RestoreReport:
    files: int = 0
    bytes: int = 0
    replaced: list[str] = field(default_factory=list)  # entries moved aside (whole restores)

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes}
