"""S3 XML documents: errors, ListAllMyBucketsResult, ListBucketResult (V2)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
OWNER_ID = "deltaview"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        HEAD
        + "<Error>"
        + _el("Code", code)
        + _el("Message", message)
        + _el("Resource", resource)
        + _el("RequestId", request_id)
        + "</Error>"
    ).encode()


def owner(user: str = OWNER_ID) -> str:
    return f"<Owner>{_el('ID', user)}{_el('DisplayName', user)}</Owner>"


def list_buckets(buckets: Iterable[tuple[str, datetime]]) -> bytes:
    items = "".join(
        f"<Bucket>{_el('Name', name)}{_el('CreationDate', iso(created))}</Bucket>"
        for name, created in buckets
    )
    return (
        f'{HEAD}<ListAllMyBucketsResult xmlns="{NS}">{owner()}<Buckets>{items}</Buckets>'
        "</ListAllMyBucketsResult>"
    ).encode()


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    start_after: str | None,
    token: str | None,
    next_token: str | None,
    encode_url: bool,
    fetch_owner: bool,
    contents: list[tuple[str, int, str, datetime]],
    prefixes: list[str],
) -> bytes:
    def enc(s: str) -> str:
        return quote(s, safe="/") if encode_url else s

    parts = [
        f'{HEAD}<ListBucketResult xmlns="{NS}">',
        _el("Name", bucket),
        _el("Prefix", enc(prefix)),
    ]
    if delimiter:
        parts.append(_el("Delimiter", enc(delimiter)))
    parts.append(_el("MaxKeys", max_keys))
    if encode_url:
        parts.append(_el("EncodingType", "url"))
    parts.append(_el("KeyCount", len(contents) + len(prefixes)))
    parts.append(_el("IsTruncated", "true" if next_token else "false"))
    if token:
        parts.append(_el("ContinuationToken", token))
    if next_token:
        parts.append(_el("NextContinuationToken", next_token))
    if start_after:
        parts.append(_el("StartAfter", enc(start_after)))
    own = owner() if fetch_owner else ""
    for key, size, etag, modified in contents:
        parts.append(
            f"<Contents>{_el('Key', enc(key))}{_el('LastModified', iso(modified))}"
            f"{_el('ETag', etag)}{_el('Size', size)}<StorageClass>STANDARD</StorageClass>"
            f"{own}</Contents>"
        )
    for p in prefixes:
        parts.append(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()
