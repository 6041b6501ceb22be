"""HTTP Range and Content-Disposition helpers shared by every download path."""

from __future__ import annotations

import re
from urllib.parse import quote

from ..errors import RangeNotSatisfiable

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range as inclusive ``(start, end)``, or None for all.

    A header this server does not serve as a range (several ranges, another unit) is ignored, as
    RFC 9110 allows; a well-formed range that cannot be satisfied raises RangeNotSatisfiable.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.groups()
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"cannot serve the last {n} bytes of {size}", size=size)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        return None  # syntactically invalid: ignore
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at {start} but the size is {size}", size=size)
    return start, min(end, size - 1)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266 / RFC 5987: an ASCII fallback plus the exact UTF-8 name."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
