"""Listing items and HEAD answers as the volume interface's value types."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from storage_proxy.core.types import DirEntry, DirEntryType, FileMeta, Stat

from .client import modified

FILE_MODE = 0o644
DIR_MODE = 0o755


def _entry(path: str, kind: DirEntryType, size: int, item: Mapping[str, Any]) -> DirEntry:
    when = modified(item)
    mode = DIR_MODE if kind is DirEntryType.DIRECTORY else FILE_MODE
    return DirEntry(
        name=posixpath.basename(path) or ".",
        path=path,
        type=kind,
        stat=Stat(size=size, mode=mode, created=when, modified=when),
        symlink_target="",
    )


def file_entry(path: str, item: Mapping[str, Any]) -> DirEntry:
    return _entry(path, DirEntryType.FILE, int(item.get("Size", 0)), item)


def dir_entry(path: str, item: Mapping[str, Any]) -> DirEntry:
    """A directory; ``item`` is its marker's listing item when it has one (for the time)."""
    return _entry(path, DirEntryType.DIRECTORY, 0, item if "LastModified" in item else {})


def etag_md5(etag: str) -> str | None:
    """The object's MD5 when its ETag is one (a single PUT, not a multipart upload)."""
    value = etag.strip('"')
    return value if len(value) == 32 and "-" not in value else None


def file_meta(head: Mapping[str, Any], record: Mapping[str, Any] | None) -> FileMeta:
    """HEAD plus the record stored when the proxy wrote it (trusted while the ETag matches)."""
    etag = str(head.get("ETag", ""))
    fresh = record is not None and record.get("etag") == etag
    rec: Mapping[str, Any] = record if record is not None else {}
    tags = rec.get("tags") or {}
    return FileMeta(
        size=int(head["ContentLength"]),
        modified=modified(head),
        sha256=rec.get("sha256") if fresh else None,
        md5=(rec.get("md5") if fresh else None) or etag_md5(etag),
        content_type=rec.get("content_type") or head.get("ContentType"),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )
