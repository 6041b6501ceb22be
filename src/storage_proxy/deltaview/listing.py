"""Listings of the virtual bucket, for both ListObjects versions: keys ``<alias>/<path>``, only
what the caller may read.

Visibility is decided before grouping, so a CommonPrefix appears only if a readable key lies
under it: a denied partition's directory is never revealed. Each CommonPrefix counts once
against MaxKeys. A page ends at its last entry (key or prefix): version 2 wraps it in an opaque
continuation token, version 1 hands it back as ``NextMarker``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime

from .auth import Principal
from .config import TableLocation
from .errors import S3Error, S3ErrorCode
from .gate import Gate, TableView
from .logview import LogFilter
from .store import ListPage, ObjectStore

_TOP = "\U0010ffff"  # sorts after every other character: "skip everything under this prefix"


@dataclass
class ListResult:
    contents: list[tuple[str, int, str, datetime]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_marker: str | None = None


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(("1:" + marker).encode()).decode()


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("1:"):
        raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "The continuation token is not valid.")
    return text[2:]


@dataclass
class _Skip:
    """Set by the consumer: a CommonPrefix already returned, whose keys need not be read."""

    prefix: str | None = None

    def covers(self, key: str) -> bool:
        return self.prefix is not None and key.startswith(self.prefix)


async def _log_sizes(
    logs: LogFilter | None, alias: str, loc: TableLocation, view: TableView, page: ListPage
) -> dict[str, tuple[int, str] | None]:
    """The caller's size and ETag of each log entry on the page (rewritten or hidden)."""
    if logs is None:
        return {}
    entries = [(o.key[len(loc.prefix) :], o) for o in page.objects]
    entries = [(rel, o) for rel, o in entries if logs.applies(rel, view)]
    return await logs.listed(alias, loc, view, entries) if entries else {}


async def _visible(
    store: ObjectStore,
    gate: Gate,
    principal: Principal,
    prefix: str,
    marker: str,
    skip: _Skip,
    logs: LogFilter | None,
) -> AsyncGenerator[tuple[str, int, str, datetime], None]:
    """Readable objects of every table, in key order, after ``marker``, under ``prefix``."""
    tables = gate.tables()
    for alias in sorted(tables, key=lambda a: a + "/"):
        head = alias + "/"
        if not (prefix.startswith(head) or head.startswith(prefix)):
            continue
        if marker and marker > head and not marker.startswith(head):
            continue
        try:
            view = await gate.view(alias, principal)
        except S3Error:
            continue  # unreadable log: show nothing of this table
        if not view.may_read_table:
            continue
        loc = tables[alias]
        inner = prefix[len(head) :] if prefix.startswith(head) else ""
        start = loc.prefix + marker[len(head) :] if marker.startswith(head) else None
        token: str | None = None
        while True:
            page = await store.list_page(loc.bucket, loc.prefix + inner, start, token, 1000)
            rewritten = await _log_sizes(logs, alias, loc, view, page)
            for obj in page.objects:
                key = head + obj.key[len(loc.prefix) :]
                rel = key[len(head) :]
                if skip.covers(key) or not view.allows(rel):
                    continue
                if rel in rewritten:
                    seen = rewritten[rel]
                    if seen is not None:
                        yield (key, seen[0], seen[1], obj.last_modified)
                    continue
                yield (key, obj.size, obj.etag, obj.last_modified)
            token = page.next_token
            if not token:
                break
            last = head + page.objects[-1].key[len(loc.prefix) :] if page.objects else ""
            if skip.prefix and skip.covers(last) and skip.prefix.startswith(head):
                # jump past the rest of this CommonPrefix instead of paging through it
                start, token = loc.prefix + skip.prefix[len(head) :] + _TOP, None


async def list_visible(
    store: ObjectStore,
    gate: Gate,
    principal: Principal,
    *,
    prefix: str,
    delimiter: str | None,
    marker: str,
    max_keys: int,
    logs: LogFilter | None = None,
) -> ListResult:
    out = ListResult()
    if max_keys == 0:
        return out
    count = 0
    last_prefix: str | None = None
    last_entry: str | None = None
    skip = _Skip()
    gen = _visible(store, gate, principal, prefix, marker, skip, logs)
    async for key, size, etag, modified in gen:
        if key <= marker:
            continue
        group = None
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                group = key[: cut + len(delimiter)]
        if group is not None and (group == last_prefix or (marker and group <= marker)):
            continue
        if count == max_keys:
            out.next_marker = last_entry
            break
        count += 1
        if group is not None:
            out.prefixes.append(group)
            last_prefix = last_entry = skip.prefix = group
        else:
            out.contents.append((key, size, etag, modified))
            last_entry = key
    await gen.aclose()
    return out
