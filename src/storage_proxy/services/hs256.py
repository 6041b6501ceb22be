"""Compact HS256 JSON Web Tokens (RFC 7519 / RFC 7515), signed and checked in one place.

Every download, tus chunk and signed URL checks a token, so this sits on the hottest path of the
client API.  A general JWT library re-examines the key (PEM? SSH? long enough?) and re-creates the
HMAC on every call and accepts many algorithms; here the one algorithm is fixed, the keyed HMAC
state is made once and copied per token, and the checks are the ones our tokens need:

- exactly three base64url segments, the header a JSON object whose ``alg`` is ``HS256`` and
  which names no ``crit`` extension (we understand none, so RFC 7515 says reject);
- the signature compared in constant time *before* the payload is parsed;
- ``exp`` (required by default), ``nbf`` and ``iat`` as NumericDates against the clock,
  and ``aud``: it must name the caller's audience, and a token carrying one is refused by a
  caller that names none (a signed URL's token is not a session token).

Tokens are byte-compatible with PyJWT's ``jwt.encode(..., algorithm="HS256")`` both ways.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

ALGORITHM = "HS256"
_HEADER = {"alg": ALGORITHM, "typ": "JWT"}


class TokenError(Exception):
    """The token is malformed, forged, or its claims do not hold."""


class TokenExpired(TokenError):
    """Well formed and correctly signed, but past its ``exp``."""


def _b64encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URLSAFE)


def _b64decode(segment: bytes) -> bytes:
    try:
        padded = segment.translate(_FROM_URLSAFE) + b"=" * (-len(segment) % 4)
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        raise TokenError("a segment is not base64url") from None


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_ENCODED_HEADER = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:  # UTF-8, as RFC 7519 has it (and no guessing of the encoding per token)
        text = raw.decode("utf-8")
        try:  # compact JSON (what every JWT library writes) in one scan
            value, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # whitespace around it, or not JSON: the full parser says which
            value = json.loads(text)
    except ValueError:
        raise TokenError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"the {what} is not a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"the algorithm must be {ALGORITHM}")
    if "crit" in header:
        raise TokenError("the header names extensions this service does not understand")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate: seconds since the epoch, integer or not (RFC 7519 §2)."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"the {name!r} claim must be a number of seconds")
    return value


class HS256:
    """Signs and verifies tokens with one secret."""

    def __init__(self, secret: str | bytes, *, leeway: float = 0.0) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.leeway = leeway

    def _sign(self, signing_input: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(signing_input)
        return mac.digest()

    def encode(self, claims: dict[str, Any]) -> str:
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = _ENCODED_HEADER + b"." + payload
        return (signing_input + b"." + _b64encode(self._sign(signing_input))).decode("ascii")

    def decode(
        self,
        token: str,
        *,
        require: Iterable[str] = ("exp",),
        audience: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The claims of a valid token; :class:`TokenError` (or :class:`TokenExpired`) if not."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise TokenError("the token is not ASCII") from None
        segments = raw.split(b".")
        if len(segments) != 3:
            raise TokenError("the token does not have three segments")
        header_b64, payload_b64, signature_b64 = segments
        if header_b64 != _ENCODED_HEADER:  # the header this class (and PyJWT) writes is known
            _check_header(_json_object(_b64decode(header_b64), "header"))
        expected = self._sign(header_b64 + b"." + payload_b64)
        if not hmac.compare_digest(_b64decode(signature_b64), expected):
            raise TokenError("the signature does not match")
        claims = _json_object(_b64decode(payload_b64), "payload")
        self._check_claims(claims, require, audience, time.time() if now is None else now)
        return claims

    def _check_claims(
        self, claims: dict[str, Any], require: Iterable[str], audience: str | None, now: float
    ) -> None:
        for name in require:
            if claims.get(name) is None:
                raise TokenError(f"the token lacks the {name!r} claim")
        exp = _numeric_date(claims, "exp")
        if exp is not None and exp <= now - self.leeway:
            raise TokenExpired("the token has expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise TokenError("the token is not valid yet")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + self.leeway:
            raise TokenError("the token was issued in the future")
        aud = claims.get("aud")
        if audience is None:
            if aud is not None:  # meant for a narrower use (a signed URL): not a general token
                raise TokenError("the token is meant for another audience")
            return
        names = [aud] if isinstance(aud, str) else aud
        if not isinstance(names, list) or audience not in names:
            raise TokenError("the token is not for this audience")
