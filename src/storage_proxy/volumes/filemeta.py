"""File metadata kept with the file: an xattr where the filesystem has them, else a sidecar row.

The record holds the checksums computed while the bytes streamed in, the content type and user
tags, plus the size and mtime the file had then: checksums are trusted only while those still
match, so a file rewritten behind the proxy's back never shows a stale sha256.
"""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from typing import Any

from ..core.errors import MetadataTooLarge
from ..core.types import FileMeta

XATTR_NAME = "user.storage-proxy.meta"
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def read_xattr(path: str | int) -> dict[str, Any] | None:
    """The stored record (of a path or an open file), ``None`` if there is none; raises
    OSError(ENOTSUP) where the filesystem has no xattrs."""
    try:
        raw = os.getxattr(path, XATTR_NAME)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_xattr(path: str | int, record: dict[str, Any]) -> bool:
    """Store the record on the file; False when the filesystem has no user xattrs.

    E2BIG (larger than one attribute may be) and ENOSPC (the file's attributes are full) are
    about the record, not the volume: :class:`MetadataTooLarge`."""
    raw = json.dumps(record, separators=(",", ":")).encode()
    try:
        os.setxattr(path, XATTR_NAME, raw)
    except OSError as e:
        if e.errno in _NO_XATTR:
            return False
        if e.errno in (errno.E2BIG, errno.ENOSPC, errno.ERANGE):
            raise MetadataTooLarge(
                f"the file's metadata ({len(raw)} bytes) does not fit in its extended attributes"
            ) from None
        raise
    return True


def copy_xattr(src: int, dst: int) -> None:
    """Carry the record over to a copy of the file (when the source has one)."""
    try:
        raw = os.getxattr(src, XATTR_NAME)
    except OSError:
        return
    try:
        os.setxattr(dst, XATTR_NAME, raw)
    except OSError as e:
        if e.errno not in _NO_XATTR:
            raise


def xattrs_unsupported(error: OSError) -> bool:
    return error.errno in _NO_XATTR


def make_record(
    st: os.stat_result,
    *,
    sha256: str | None,
    md5: str | None,
    content_type: str | None,
    tags: dict[str, str],
) -> dict[str, Any]:
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha256,
        "md5": md5,
        "content_type": content_type,
        "tags": tags,
    }


def to_file_meta(st: os.stat_result, record: dict[str, Any] | None) -> FileMeta:
    record = record or {}
    fresh = record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns
    tags = record.get("tags") or {}
    return FileMeta(
        size=st.st_size,
        modified=datetime.fromtimestamp(st.st_mtime, UTC),
        sha256=record.get("sha256") if fresh else None,
        md5=record.get("md5") if fresh else None,
        content_type=record.get("content_type"),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )
