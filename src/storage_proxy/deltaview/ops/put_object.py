"""PutObject (read-only off): ``_delta_log/`` and allowed partitions pass through; the read-only
wrapper around the store refuses it otherwise. Bodies are read whole (writes are small here:
log entries and data files of allowed partitions) and their SHA-256 checked when signed."""

from __future__ import annotations

import hashlib

from aiohttp import web

from ..context import Call
from ..errors import S3Error, S3ErrorCode

MAX_PUT = 5 * 1024**3


async def handle(call: Call) -> web.StreamResponse:
    view, request = call.view, call.request
    await view.store.begin_write(call.key or "")  # read-only: refused here, nothing else
    alias, rel, loc = call.table()
    await view.gate.authorize_write(alias, rel, call.principal)
    if request.content_length is not None and request.content_length > MAX_PUT:
        raise S3Error(S3ErrorCode.INVALID_ARGUMENT, "Object too large.")
    sha = request.headers.get("x-amz-content-sha256", "")
    if sha.startswith("STREAMING-"):
        raise S3Error(S3ErrorCode.NOT_IMPLEMENTED, "aws-chunked uploads are not supported.")
    body = await request.read()
    if len(sha) == 64 and hashlib.sha256(body).hexdigest() != sha:
        raise S3Error(S3ErrorCode.SIGNATURE_DOES_NOT_MATCH, "payload hash mismatch")
    etag = await view.store.put(
        loc.bucket, loc.prefix + rel, body, request.headers.get("Content-Type")
    )
    return web.Response(status=200, headers={"ETag": etag})
