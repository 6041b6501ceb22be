from __future__ import annotations

from aiohttp import web

from .. import listing, xml
from ..config import BUCKET
from ..context import Call
from ..errors import S3Error, S3ErrorCode

MAX_KEYS = 1000


def _max_keys(text: str | None) -> int:
    if text is None:
        return MAX_KEYS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "max-keys must be a non-negative integer")
    return min(value, MAX_KEYS)


def _common(call: Call) -> tuple[str, str | None, int, bool]:
    """prefix, delimiter, max-keys and URL encoding: what both versions take alike."""
    q = call.request.query
    encoding = q.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "Invalid Encoding Method specified")
    return (
        q.get("prefix", ""),
        q.get("delimiter") or None,
        _max_keys(q.get("max-keys")),
        bool(encoding),
    )


async def _list(
    call: Call, prefix: str, delimiter: str | None, marker: str, max_keys: int
) -> listing.ListResult:
    return await listing.list_visible(
        call.view.store,
        call.view.gate,
        call.principal,
        prefix=prefix,
        delimiter=delimiter,
        marker=marker,
        max_keys=max_keys,
        logs=call.view.logs,
    )


async def handle(call: Call) -> web.StreamResponse:
    """ListObjectsV2: pages by an opaque continuation token (or ``start-after``)."""
    q = call.request.query
    prefix, delimiter, max_keys, encode_url = _common(call)
    start_after = q.get("start-after") or None
    token = q.get("continuation-token")
    marker = listing.decode_token(token) if token is not None else ""
    marker = max(marker, start_after or "")
    result = await _list(call, prefix, delimiter, marker, max_keys)
    body = xml.list_objects_v2(
        bucket=BUCKET,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        start_after=start_after,
        token=token,
        next_token=listing.encode_token(result.next_marker) if result.next_marker else None,
        encode_url=encode_url,
        fetch_owner=q.get("fetch-owner") == "true",
        contents=result.contents,
        prefixes=result.prefixes,
    )
    return web.Response(body=body, content_type="application/xml")


async def handle_v1(call: Call) -> web.StreamResponse:
    """ListObjects (version 1), as older clients and Hadoop's S3A with ``list.version=1`` send
    it: pages by ``marker``, a plain key; the same visibility rules as version 2."""
    prefix, delimiter, max_keys, encode_url = _common(call)
    marker = call.request.query.get("marker", "")
    result = await _list(call, prefix, delimiter, marker, max_keys)
    body = xml.list_objects_v1(
        bucket=BUCKET,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        marker=marker,
        next_marker=result.next_marker,
        encode_url=encode_url,
        contents=result.contents,
        prefixes=result.prefixes,
    )
    return web.Response(body=body, content_type="application/xml")
