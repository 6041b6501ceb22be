"""The payload hash of a SigV4-signed request, computed where the caller already reads the body.

botocore signs a body's sha256 (``x-amz-content-sha256``) on every part and object it sends:
over plain HTTP always, and over HTTPS unless a ``Content-MD5`` goes with it.  It hashes the body
itself, inside the client call, which for this daemon is on the event loop: 4 ms per 8 MiB part
during which no other request is served (a fifth of the loop's time in a tus upload to an s3
volume).  The volume already hashes each part in a thread (for ``x-amz-checksum-sha256`` and the
object's checksums), so it tells the signer that digest instead: :func:`known_payload` around
the client call, read by :class:`KnownPayloadS3SigV4Auth` for exactly that body (the same
object), everything else signed as botocore does.

The same body is handed to aiohttp as the bytes it was made from (:func:`send_known_bytes`, on
``before-send``): botocore wants a file object, and aiohttp sends a ``BytesIO`` by first copying
it whole (taking its buffer unshares it) and then 64 KiB at a time with a pass through the event
loop between pieces -- 128 writes and two copies per 8 MiB part instead of one write.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest

#: (the body object, its sha256 in hex, the bytes it was made from)
_KNOWN: ContextVar[tuple[object, str, bytes] | None] = ContextVar("s3_known_payload", default=None)


class KnownPayloadS3SigV4Auth(S3SigV4Auth):
    """botocore's S3 SigV4 signer; a body whose sha256 the caller computed is not hashed again."""

    def payload(self, request: AWSRequest) -> str:
        known = _KNOWN.get()
        if (
            known is not None
            and request.body is known[0]
            and not self._is_streaming_checksum_payload(request)
            and self._should_sha256_sign_payload(request)
        ):
            return known[1]
        return str(super().payload(request))


def install() -> None:
    """Sign ``s3v4`` requests with :class:`KnownPayloadS3SigV4Auth` (the same signatures)."""
    if botocore.auth.AUTH_TYPE_MAPS.get("s3v4") is S3SigV4Auth:
        botocore.auth.AUTH_TYPE_MAPS["s3v4"] = KnownPayloadS3SigV4Auth


def send_known_bytes(request: AWSPreparedRequest, **_: Any) -> None:
    """``before-send``: the known body goes out as its bytes (signed and prepared already)."""
    known = _KNOWN.get()
    if known is not None and request.body is known[0]:
        request.body = known[2]


def watch(events: Any) -> None:
    """Register :func:`send_known_bytes` on a client's event system."""
    events.register("before-send.s3", send_known_bytes)


@contextlib.contextmanager
def known_payload(body: io.BytesIO, sha256: bytes, data: bytes) -> Iterator[None]:
    """Within the block (one client call in this task), ``body`` (made from ``data``) hashes
    to ``sha256``."""
    token = _KNOWN.set((body, sha256.hex(), data))
    try:
        yield
    finally:
        _KNOWN.reset(token)
