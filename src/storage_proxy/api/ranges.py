"""What every download path answers the same way: ranges, validators, Content-Disposition.

Ranges follow RFC 9110 §14: one ``bytes=a-b`` / ``a-`` / ``-n`` range is served (206); a header
this server does not serve as a range — several ranges, another unit, a syntactically invalid one
(``5-2``, non-ASCII digits) — is ignored and the whole representation is sent (200); a well-formed
range that cannot be satisfied (``bytes=-0``, a start past the end) is a 416 with
``Content-Range: bytes */size``.  ``If-Range`` that does not match turns a range request into a
plain one.  Conditional requests (``If-None-Match``, ``If-Modified-Since``, ``If-Match``,
``If-Unmodified-Since``) are decided by :func:`preconditions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from ..core.errors import PreconditionFailed, RangeNotSatisfiable

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range to serve as inclusive ``(start, end)``, or None for the whole body."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges, another unit, or not a range at all: ignored
    first, last = m.groups()
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"cannot serve the last {n} bytes of {size}", size=size)
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at {start} but the size is {size}", size=size)
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266 / RFC 5987: an ASCII fallback plus the exact UTF-8 name."""
    plain = filename.isascii() and filename.isprintable()
    if plain and '"' not in filename and "\\" not in filename:
        fallback = filename  # (most names: no character to replace)
    else:
        fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    encoded = quote(filename.encode("utf-8", "surrogateescape"), safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@dataclass(frozen=True, slots=True)
class Representation:
    """What a download is about to send, as far as validators are concerned."""

    etag: str  # quoted, strong
    modified: datetime
    size: int


def _etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    for tag in (t.strip() for t in header.split(",")):
        if tag == "*":
            return True
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def preconditions(request: web.BaseRequest, rep: Representation) -> int | None:
    """304 or 412 when a conditional request says so; None to send the representation."""
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _etag_listed(if_match, rep.etag, weak=False):
        raise PreconditionFailed("If-Match does not match the current ETag")
    since = request.if_unmodified_since
    if if_match is None and since is not None and rep.modified.timestamp() > since.timestamp():
        raise PreconditionFailed("the file changed after If-Unmodified-Since")
    if_none = request.headers.get("If-None-Match")
    if if_none is not None:
        if _etag_listed(if_none, rep.etag, weak=True):
            return 304 if request.method in ("GET", "HEAD") else 412
        return None
    modified_since = request.if_modified_since
    if modified_since is not None and int(rep.modified.timestamp()) <= modified_since.timestamp():
        return 304
    return None


def requested_range(request: web.BaseRequest, rep: Representation) -> tuple[int, int] | None:
    """The range to serve, honouring ``If-Range`` (a mismatch means the whole body)."""
    header = request.headers.get("Range")
    if not header or request.method not in ("GET", "HEAD"):
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None:
        if if_range.startswith('"') or if_range.startswith("W/"):
            if if_range != rep.etag:
                return None
        else:
            date = request.if_range
            if date is None or int(rep.modified.timestamp()) > date.timestamp():
                return None
    return parse_range(header, rep.size)
