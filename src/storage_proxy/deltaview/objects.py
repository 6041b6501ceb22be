"""Object metadata, cached for immutable keys (Delta data files and numbered log entries), and
the HTTP headers S3 sends for an object."""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import UTC
from email.utils import format_datetime
from typing import TYPE_CHECKING

from aiohttp import web

from . import ranges
from .config import TableLocation
from .deltalog import LOG
from .store import ObjectMeta, ObjectStore

if TYPE_CHECKING:
    from .context import Call
    from .logview import LogObject

_MUTABLE = re.compile(r"^_delta_log/(?!\d{20}\.)")  # e.g. _last_checkpoint


class MetaCache:
    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[tuple[str, str], ObjectMeta] = OrderedDict()
        self._size = size

    async def get(self, store: ObjectStore, loc: TableLocation, rel: str) -> ObjectMeta:
        key = (loc.bucket, loc.prefix + rel)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        meta = await store.head(*key)
        if not (rel.startswith(LOG) and _MUTABLE.match(rel)):
            self._items[key] = meta
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return meta


async def serve_bytes(
    call: Call, obj: LogObject, range_header: str | None, head: bool = False
) -> web.StreamResponse:
    """A rewritten log entry from memory, with the same headers and Range rules as a proxied
    object (HEAD: headers only)."""
    meta = ObjectMeta(obj.size, obj.etag, obj.last_modified, "application/octet-stream")
    out = headers(meta)
    if head:
        return web.Response(status=200, headers=out)
    span = ranges.resolve(range_header, obj.size)
    if span is None:
        return web.Response(status=200, body=obj.body, headers=out)
    first, last = span
    out["Content-Range"] = ranges.content_range(first, last, obj.size)
    out["Content-Length"] = str(last - first + 1)
    return web.Response(status=206, body=obj.body[first : last + 1], headers=out)


def headers(meta: ObjectMeta) -> dict[str, str]:
    return {
        "Content-Length": str(meta.size),
        "ETag": meta.etag if meta.etag.startswith('"') else f'"{meta.etag}"',
        "Last-Modified": format_datetime(meta.last_modified.astimezone(UTC), usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Type": meta.content_type,
    }
