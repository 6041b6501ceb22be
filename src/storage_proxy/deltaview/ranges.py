"""A single HTTP byte range (``a-b``, ``a-``, ``-n``) resolved against an object's size."""

from __future__ import annotations

import re

from .errors import S3Error, S3ErrorCode

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def resolve(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive; None to serve the whole object (no or unparseable Range, as HTTP
    says to ignore a malformed one); S3Error InvalidRange when it cannot be satisfied."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or several ranges: ignored, like S3
    first_s, last_s = m.groups()
    if first_s:
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
        if last_s and last < first:
            return None
        if first >= size:
            raise unsatisfiable(size)
        return first, min(last, size - 1)
    n = int(last_s)
    if n == 0 or size == 0:
        raise unsatisfiable(size)
    return max(0, size - n), size - 1


def unsatisfiable(size: int) -> S3Error:
    return S3Error(S3ErrorCode.INVALID_RANGE, headers={"Content-Range": f"bytes */{size}"})


def content_range(first: int, last: int, size: int) -> str:
    return f"bytes {first}-{last}/{size}"
