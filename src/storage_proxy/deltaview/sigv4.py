"""AWS Signature Version 4 checking, header and presigned-query forms (S3 flavour).

S3 specifics: the canonical URI is the path exactly as sent (no normalisation, no second
encoding); the payload hash is the ``x-amz-content-sha256`` header (``UNSIGNED-PAYLOAD`` for
presigned URLs). Pure functions: the caller looks the secret up and supplies the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote, unquote

from .errors import S3Error, S3ErrorCode

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True)
class SignedRequest:
    access_key: str
    amz_date: str  # 20240101T000000Z
    scope: str  # 20240101/us-east-1/s3/aws4_request
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires: int | None = None


def _invalid(msg: str) -> S3Error:
    return S3Error(S3ErrorCode.INVALID_ARGUMENT, msg, reason="bad-auth")


def _parse_credential(cred: str) -> tuple[str, str]:
    parts = cred.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise _invalid("malformed credential scope")
    return parts[0], "/".join(parts[1:])


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    out = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        out.append((unquote(k.replace("+", "%20")), unquote(v.replace("+", "%20"))))
    return out


def parse(raw_query: str, headers: Mapping[str, str]) -> SignedRequest | None:
    """The signature parts of a request; None when it is not signed at all."""
    auth = headers.get("Authorization")
    if auth:
        if not auth.startswith(ALGORITHM + " "):
            raise _invalid("unsupported authorization type (only AWS4-HMAC-SHA256)")
        fields: dict[str, str] = {}
        for item in auth[len(ALGORITHM) + 1 :].split(","):
            k, _, v = item.strip().partition("=")
            fields[k] = v
        try:
            access_key, scope = _parse_credential(fields["Credential"])
            signed = tuple(fields["SignedHeaders"].split(";"))
            signature = fields["Signature"]
        except KeyError:
            raise _invalid("malformed Authorization header") from None
        amz_date = headers.get("x-amz-date") or ""
        if not amz_date and headers.get("Date"):
            try:
                parsed = datetime.strptime(headers["Date"], "%a, %d %b %Y %H:%M:%S GMT")
            except ValueError:
                raise _invalid("malformed Date header") from None
            amz_date = parsed.strftime("%Y%m%dT%H%M%SZ")
        return SignedRequest(access_key, amz_date, scope, signed, signature, False)
    query = dict(_split_query(raw_query))
    if "X-Amz-Signature" not in query:
        return None
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise _invalid("unsupported X-Amz-Algorithm")
    try:
        access_key, scope = _parse_credential(query["X-Amz-Credential"])
        expires = int(query["X-Amz-Expires"])
        return SignedRequest(
            access_key,
            query["X-Amz-Date"],
            scope,
            tuple(query["X-Amz-SignedHeaders"].split(";")),
            query["X-Amz-Signature"],
            True,
            expires,
        )
    except (KeyError, ValueError):
        raise _invalid("malformed presigned query") from None


def _uri_encode(s: str) -> str:
    return quote(s, safe="-_.~")


def canonical_path(raw_path: str) -> str:
    """The path decoded once and re-encoded outside the unreserved set, as S3 canonicalizes it.

    HTTP clients differ in what they leave encoded on the wire (``year%3D2024`` signed, sent as
    ``year=2024``), so a signature is checked against the path as received and this form.
    """
    return quote(unquote(raw_path or "/"), safe="/-_.~")


def canonical_query(raw_query: str, drop_signature: bool) -> str:
    pairs = [
        (_uri_encode(k), _uri_encode(v))
        for k, v in _split_query(raw_query)
        if not (drop_signature and k == "X-Amz-Signature")
    ]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    sr: SignedRequest,
) -> str:
    lines = []
    for name in sr.signed_headers:
        values = headers.getall(name) if hasattr(headers, "getall") else [headers.get(name)]
        if values == [None] or not values:
            raise S3Error(
                S3ErrorCode.SIGNATURE_DOES_NOT_MATCH,
                f"signed header {name!r} is missing",
                reason="signature",
            )
        lines.append(f"{name}:{','.join(' '.join(str(v).split()) for v in values)}\n")
    if sr.presigned:
        payload = UNSIGNED
    else:
        payload = headers.get("x-amz-content-sha256") or EMPTY_SHA256
    return "\n".join(
        [
            method,
            raw_path or "/",
            canonical_query(raw_query, sr.presigned),
            "".join(lines),
            ";".join(sr.signed_headers),
            payload,
        ]
    )


@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(secret: str, amz_date: str, scope: str, creq: str) -> str:
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()]
    )
    date, region, service, _ = scope.split("/")
    return hmac.new(
        signing_key(secret, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()


def check_time(sr: SignedRequest, now: datetime, max_skew: float) -> None:
    try:
        when = datetime.strptime(sr.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid("missing or malformed x-amz-date") from None
    if sr.scope.split("/")[0] != sr.amz_date[:8]:
        raise S3Error(
            S3ErrorCode.SIGNATURE_DOES_NOT_MATCH, "scope date != request date", reason="signature"
        )
    skew = timedelta(seconds=max_skew)
    if sr.presigned:
        expires = sr.expires or 0
        if expires < 1 or expires > MAX_PRESIGN_EXPIRES:
            raise _invalid("X-Amz-Expires must be between 1 and 604800 seconds")
        if when - now > skew:
            raise S3Error(S3ErrorCode.REQUEST_TIME_TOO_SKEWED, reason="clock-skew")
        if now > when + timedelta(seconds=expires):
            raise S3Error(S3ErrorCode.ACCESS_DENIED, "Request has expired", reason="expired")
    elif abs(now - when) > skew:
        raise S3Error(S3ErrorCode.REQUEST_TIME_TOO_SKEWED, reason="clock-skew")


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    sr: SignedRequest,
    secret: str,
    now: datetime,
    max_skew: float = 900.0,
) -> None:
    """Raise S3Error unless ``sr`` is a valid, timely signature of this request."""
    if "host" not in sr.signed_headers:
        raise _invalid("the host header must be signed")
    check_time(sr, now, max_skew)
    for path in dict.fromkeys((raw_path, canonical_path(raw_path))):  # as received, then S3's
        creq = canonical_request(method, path, raw_query, headers, sr)
        if hmac.compare_digest(sign(secret, sr.amz_date, sr.scope, creq), sr.signature):
            return
    raise S3Error(S3ErrorCode.SIGNATURE_DOES_NOT_MATCH, reason="signature")


@dataclass(frozen=True)
class PresignRequest:
    """What a presigned GET is signed for: the endpoint it names and the request that will use
    it. By default a plain GET (``host`` signed, UNSIGNED-PAYLOAD); a redirect follower that
    re-sends ``x-amz-content-sha256`` gets that header signed and its value as the payload hash
    (RGW takes the header as the payload hash), and no ``host``, which followers disagree on."""

    endpoint: str  # scheme://host[:port]
    path: str  # /bucket/key, encoded
    region: str
    expires: int
    content_sha256: str | None = None


def presign(
    req: PresignRequest, access_key: str, secret: str, token: str | None, now: datetime
) -> str:
    """A SigV4 query-signed GET URL (one HMAC per URL once the day's signing key is cached)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{req.region}/s3/aws4_request"
    if req.content_sha256:
        name, value, payload = "x-amz-content-sha256", req.content_sha256, req.content_sha256
    else:
        name, value, payload = "host", req.endpoint.split("://", 1)[-1], UNSIGNED
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(req.expires),
        "X-Amz-SignedHeaders": name,
    }
    if token:
        params["X-Amz-Security-Token"] = token
    query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params.items()))
    creq = "\n".join(["GET", req.path, query, f"{name}:{value}\n", name, payload])
    return f"{req.endpoint}{req.path}?{query}&X-Amz-Signature={sign(secret, amz_date, scope, creq)}"


def object_path(bucket: str, key: str) -> str:
    return "/" + _uri_encode(bucket) + "/" + quote(key, safe="/-_.~")
