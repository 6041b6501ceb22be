"""S3 XML documents: errors, ListAllMyBucketsResult, ListBucketResult (V2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def _url_encoder(encode_url: bool) -> Callable[[str], str]:
    return (lambda s: quote(s, safe="/")) if encode_url else (lambda s: s)


def _entries(
    contents: list[tuple[str, int, str, datetime]],
    prefixes: list[str],
    enc: Callable[[str], str],
    with_owner: bool,
) -> list[str]:
    """The <Contents> and <CommonPrefixes> of either listing version."""
    own = owner() if with_owner else ""
    parts = [
        f"<Contents>{_el('Key', enc(key))}{_el('LastModified', iso(modified))}"
        f"{_el('ETag', etag)}{_el('Size', size)}<StorageClass>STANDARD</StorageClass>"
        f"{own}</Contents>"
        for key, size, etag, modified in contents
    ]
    parts += [f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes]
    return parts


def _listing_head(
    bucket: str, prefix: str, delimiter: str | None, max_keys: int, enc: Callable[[str], str]
) -> list[str]:
    parts = [
        f'{HEAD}<ListBucketResult xmlns="{NS}">',
        _el("Name", bucket),
        _el("Prefix", enc(prefix)),
    ]
    if delimiter:
        parts.append(_el("Delimiter", enc(delimiter)))
    parts.append(_el("MaxKeys", max_keys))
    return parts


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
    enc = _url_encoder(encode_url)
    parts = _listing_head(bucket, prefix, delimiter, max_keys, enc)
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
    parts += _entries(contents, prefixes, enc, fetch_owner)
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def list_objects_v1(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    marker: str,
    next_marker: str | None,
    encode_url: bool,
    contents: list[tuple[str, int, str, datetime]],
    prefixes: list[str],
) -> bytes:
    """Version 1 pages by ``Marker``: the last key (or CommonPrefix) returned.  ``NextMarker`` is
    sent whenever the answer is truncated (S3 sends it only with a delimiter; without one, clients
    take the last key, which is the same value here).  V1 always names the owner."""
    enc = _url_encoder(encode_url)
    parts = _listing_head(bucket, prefix, delimiter, max_keys, enc)
    parts.append(_el("Marker", enc(marker)))
    if next_marker:
        parts.append(_el("NextMarker", enc(next_marker)))
    if encode_url:
        parts.append(_el("EncodingType", "url"))
    parts.append(_el("IsTruncated", "true" if next_marker else "false"))
    parts += _entries(contents, prefixes, enc, with_owner=True)
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()
