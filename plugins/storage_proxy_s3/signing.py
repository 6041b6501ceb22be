"""The payload hash of a SigV4-signed request, computed where the caller already reads the body.

botocore signs a body's sha256 (``x-amz-content-sha256``) on every part and object it sends:
over plain HTTP always, and over HTTPS unless a ``Content-MD5`` goes with it.  It hashes the body
itself, inside the client call, which for this daemon is on the event loop: 4 ms per 8 MiB part
during which no other request is served (a fifth of the loop's time in a tus upload to an s3
volume).  The volume already hashes each part in a thread (for ``x-amz-checksum-sha256`` and the
object's checksums), so it tells the signer that digest instead: :func:`known_payload` around
the client call, read by :class:`KnownPayloadS3SigV4Auth` for exactly that body (the same
object), everything else signed as botocore does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

_KNOWN: ContextVar[tuple[object, str] | None] = ContextVar("s3_known_payload", default=None)


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


@contextlib.contextmanager
def known_payload(body: object, sha256: bytes) -> Iterator[None]:
    """Within the block (one client call in this task), ``body`` hashes to ``sha256``."""
    token = _KNOWN.set((body, sha256.hex()))
    try:
        yield
    finally:
        _KNOWN.reset(token)
