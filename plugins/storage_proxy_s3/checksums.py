"""``x-amz-checksum-sha256``: whether the endpoint verifies it, and checking what it echoes.

S3 refuses a PUT or a part whose body does not match the ``x-amz-checksum-sha256`` it carries
(400), and echoes the value it stored.  Not every S3-compatible server does: Ceph RGW 16.2 accepts
the header and ignores it.  Sending it to such a server is worse than useless over HTTPS, where
botocore then stops signing the payload and nothing checks the body at all.  So the volume asks
once at start-up (option ``checksum-sha256 = "auto"``): one PUT with the right value must be
stored, one with a wrong value refused; only then are checksums sent.  Without them the body is
still checked: over plain HTTP botocore signs its sha256 (``x-amz-content-sha256``, which S3 and
RGW verify), over HTTPS TLS protects it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from storage_proxy.core.errors import BackendUnavailable

from .client import S3Connection, error_code

log = logging.getLogger(__name__)

_PROBE_BODY = b"storage-proxy: does this endpoint verify x-amz-checksum-sha256?"
#: Where the probe objects live, below the volume's prefix and outside every quota scope.
PROBE_DIR = ".storage-proxy"


def sha256_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def check_echo(response: Mapping[str, Any], sent: str | None, what: str) -> None:
    """The endpoint's echo of ``x-amz-checksum-sha256`` must be what was sent (when it echoes)."""
    echoed = response.get("ChecksumSHA256")
    if sent is not None and echoed is not None and echoed != sent:
        raise BackendUnavailable(
            f"S3 stored {what} with sha256 {echoed}, but {sent} was sent; the write is abandoned"
        )


async def endpoint_verifies_sha256(conn: S3Connection, prefix: str) -> bool:
    """Ask the endpoint: a right checksum is stored, a wrong one refused (probe keys removed)."""
    base = "/".join(p for p in (prefix, PROBE_DIR, f"checksum-probe-{uuid.uuid4().hex}") if p)
    right, wrong = base + "-right", base + "-wrong"
    kw = {"Bucket": conn.bucket, "Body": _PROBE_BODY}
    try:
        try:
            sent = sha256_b64(_PROBE_BODY)
            r = await conn.c.put_object(Key=right, ChecksumSHA256=sent, **kw)
            if r.get("ChecksumSHA256") not in (None, sent):
                return False
        except ClientError as e:
            log.info("S3 endpoint refused x-amz-checksum-sha256 (%s)", error_code(e)[0])
            return False
        try:
            await conn.c.put_object(Key=wrong, ChecksumSHA256=sha256_b64(b"other"), **kw)
        except ClientError as e:
            return error_code(e)[1] == 400
        return False  # stored despite a wrong checksum: the header is ignored
    except (BotoCoreError, OSError) as e:
        log.warning("could not ask the S3 endpoint about checksums (%s)", type(e).__name__)
        return False
    finally:
        try:
            await conn.delete_keys([right, wrong])
        except Exception:
            log.warning("could not remove the checksum probe objects below %s", base)
