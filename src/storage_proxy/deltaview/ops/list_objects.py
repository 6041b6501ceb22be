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


async def handle(call: Call) -> web.StreamResponse:
    q = call.request.query
    encoding = q.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "Invalid Encoding Method specified")
    max_keys = _max_keys(q.get("max-keys"))
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter") or None
    start_after = q.get("start-after") or None
    token = q.get("continuation-token")
    marker = listing.decode_token(token) if token is not None else ""
    marker = max(marker, start_after or "")
    result = await listing.list_v2(
        call.view.store,
        call.view.gate,
        call.principal,
        prefix=prefix,
        delimiter=delimiter,
        marker=marker,
        max_keys=max_keys,
    )
    body = xml.list_objects_v2(
        bucket=BUCKET,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        start_after=start_after,
        token=token,
        next_token=listing.encode_token(result.next_marker) if result.next_marker else None,
        encode_url=encoding == "url",
        fetch_owner=q.get("fetch-owner") == "true",
        contents=result.contents,
        prefixes=result.prefixes,
    )
    return web.Response(body=body, content_type="application/xml")
