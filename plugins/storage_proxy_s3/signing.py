"""SigV4 for S3 uploads with the body's sha256 computed off the event loop.

botocore signs the sha256 of every PUT and part body it sends over plain HTTP
(``x-amz-content-sha256``, which S3 and RGW verify), and computes it on the calling thread: with
aiobotocore that is the event loop, blocked about 8 ms per 16 MiB part while uploads arrive.
Measured on RGW with tus uploads of 256 MiB, taking that hashing off the loop raised the
throughput by a fifth.  So, for ``PutObject`` and ``UploadPart`` only:

- a ``before-sign`` hook (aiobotocore awaits it) puts the body's sha256 into the request context,
  hashed in a thread, or taken from the ``x-amz-checksum-sha256`` already computed for the same
  body (``multipart.py``);
- a ``choose-signer`` hook picks :class:`OffLoopPayloadAuth`, botocore's S3 SigV4 signer that
  uses that value instead of hashing again.  Registered once in botocore's signer table under
  its own name; every other request, and every presigned URL, keeps botocore's own signer.

What gets signed is unchanged: the same canonical request, the same payload hash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import Any

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.handlers import set_operation_specific_signer

SIGNER = "s3v4-storage-proxy-offloop"
_KEY = "storage_proxy_payload_sha256"
_OPERATIONS = ("PutObject", "UploadPart")
#: Bodies smaller than this are hashed in place (a thread hop costs more than the hash).
_OFF_LOOP = 256 << 10


class OffLoopPayloadAuth(S3SigV4Auth):  # type: ignore[misc]
    """S3 SigV4 taking the payload hash from the request context when a hook computed it."""

    def payload(self, request: Any) -> Any:
        known = request.context.get(_KEY)
        if known is not None and self._should_sha256_sign_payload(request):
            if not self._is_streaming_checksum_payload(request):
                return known
        return super().payload(request)


def install(client: Any) -> None:
    """Hook an aiobotocore S3 client's uploads to the off-loop signer."""
    botocore.auth.AUTH_TYPE_MAPS.setdefault(SIGNER, OffLoopPayloadAuth)
    for operation in _OPERATIONS:
        client.meta.events.register(f"choose-signer.s3.{operation}", _choose)
        client.meta.events.register(f"before-sign.s3.{operation}", _hash_payload)


def _choose(context: Any, signing_name: str, signature_version: str, **kw: Any) -> Any:
    chosen = set_operation_specific_signer(context=context, signing_name=signing_name, **kw)
    chosen = chosen or signature_version
    return SIGNER if chosen == "s3v4" else chosen


async def _hash_payload(request: Any, signature_version: str, **_: Any) -> None:
    body = request.body
    if signature_version != SIGNER or not isinstance(body, bytes | bytearray | memoryview):
        return
    request.context[_KEY] = _from_checksum(request) or (
        await asyncio.to_thread(_sha256_hex, body) if len(body) >= _OFF_LOOP else _sha256_hex(body)
    )


def _from_checksum(request: Any) -> str | None:
    value = request.headers.get("x-amz-checksum-sha256")
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def _sha256_hex(body: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(body).hexdigest()
