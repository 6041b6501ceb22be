"""A snapshot of an s3 vfolder is a manifest: every file's path, size and time, and where its
bytes are -- an object version (a bucket with versioning) or a server-side copy (without).  The
manifest is one JSON object written last, so a listing never shows half a snapshot; browsing
and reading go through it alone (:class:`ManifestTree`), never through a user path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage_proxy.core.errors import FileNotFound, IsADirectory, NotADirectory
from storage_proxy.core.files import ReadOptions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import DirEntry, DirEntryType
from storage_proxy.volumes.snapshots import SnapshotTree

from .client import S3Connection
from .data import read_object
from .entries import dir_entry, file_entry

VERSIONS = "versions"
COPIES = "copies"


@dataclass(frozen=True, slots=True)
class Stored:
    """One file of a snapshot: where its bytes are."""

    size: int
    modified: float
    key: str
    version: str | None = None  # the object version (a versioned bucket), else a copy's key


@dataclass
class Manifest:
    created: float
    mode: str  # VERSIONS or COPIES
    token: str  # which taker wrote it (two takers of one id: only one keeps its copies)
    files: dict[str, Stored] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_bytes(self) -> bytes:
        files = [[p, f.size, f.modified, f.key, f.version] for p, f in sorted(self.files.items())]
        record = {
            "created": self.created,
            "mode": self.mode,
            "token": self.token,
            "files": files,
            "dirs": sorted(self.dirs),
        }
        return json.dumps(record, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        record: dict[str, Any] = json.loads(raw)
        files = {
            str(p): Stored(int(size), float(mtime), str(key), None if v is None else str(v))
            for p, size, mtime, key, v in record["files"]
        }
        return cls(
            float(record["created"]),
            str(record["mode"]),
            str(record.get("token", "")),
            files,
            {str(d) for d in record.get("dirs", [])},
        )


class ManifestTree(SnapshotTree):
    """A snapshot's files as its manifest lists them; bytes from the versions or copies."""

    def __init__(self, conn: S3Connection, manifest: Manifest) -> None:
        self.conn = conn
        self.manifest = manifest
        dirs = set(manifest.dirs)
        for path in manifest.files:
            parts = path.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        self._dirs = dirs

    def _kind(self, rel: RelPath) -> DirEntryType:
        path = str(rel)
        if not rel.parts or path in self._dirs:
            return DirEntryType.DIRECTORY
        if path in self.manifest.files:
            return DirEntryType.FILE
        raise FileNotFound(f"no such file or directory in the snapshot: {rel}")

    def _make(self, path: str) -> DirEntry:
        stored = self.manifest.files.get(path)
        if stored is not None:
            when = datetime.fromtimestamp(stored.modified, UTC)
            return file_entry(path, {"Size": stored.size, "LastModified": when})
        return dir_entry(path, {"LastModified": datetime.fromtimestamp(self.manifest.created, UTC)})

    async def scandir(
        self, relpath: RelPath, *, recursive: bool = False, limit: int | None = None
    ) -> list[DirEntry]:
        if self._kind(relpath) is not DirEntryType.DIRECTORY:
            raise NotADirectory(f"not a directory: {relpath}")
        base = f"{relpath}/" if relpath.parts else ""
        found = []
        for path in sorted(self._dirs | set(self.manifest.files)):
            rest = path[len(base) :]
            if not path.startswith(base) or not rest or (not recursive and "/" in rest):
                continue
            found.append(self._make(path))
            if limit is not None and len(found) >= limit:
                break
        return found

    async def stat(self, relpath: RelPath) -> DirEntry:
        self._kind(relpath)
        return self._make(str(relpath)) if relpath.parts else self._make(".")

    async def read(
        self, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]:
        if self._kind(relpath) is DirEntryType.DIRECTORY:
            raise IsADirectory(f"is a directory: {relpath}")
        stored = self.manifest.files[str(relpath)]
        if options.length == 0 or stored.size == 0:
            return
        # a version expired by a lifecycle rule: 404
        async for chunk in read_object(self.conn, stored.key, stored.version, options, relpath):
            yield chunk
