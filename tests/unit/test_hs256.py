"""The HS256 token codec: interoperable with PyJWT both ways, and strict about what it accepts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from storage_proxy.services.hs256 import HS256, TokenError, TokenExpired

SECRET = "s" * 64


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(header: bytes, payload: bytes) -> str:
    """Any header and payload, signed properly (so only what they say can be at fault)."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def _forge(header: dict[str, object], claims: dict[str, object]) -> str:
    return _signed(json.dumps(header).encode(), json.dumps(claims).encode())


def future() -> int:
    return int(time.time()) + 60


def test_tokens_made_by_pyjwt_are_accepted_and_ours_are_accepted_by_pyjwt() -> None:
    codec = HS256(SECRET)
    claims = {"op": "download", "relpath": "a/ü b.bin", "exp": future(), "groups": ["x"]}
    assert codec.decode(jwt.encode(claims, SECRET, algorithm="HS256")) == claims
    ours = codec.encode(claims)
    assert jwt.decode(ours, SECRET, algorithms=["HS256"]) == claims
    assert ours == jwt.encode(claims, SECRET, algorithm="HS256")  # same bytes, same header


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), id="signature"),
        pytest.param(
            lambda t: ".".join([t.split(".")[0], _b64(b'{"exp":9999999999}'), t.split(".")[2]]),
            id="payload",
        ),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
        pytest.param(lambda t: t + ".x", id="four-segments"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(lambda t: t.replace(".", ".*", 1), id="not-base64"),
        pytest.param(lambda t: "é" + t, id="not-ascii"),
    ],
)
def test_tampered_or_malformed_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    codec = HS256(SECRET)
    token = codec.encode({"exp": future()})
    with pytest.raises(TokenError):
        codec.decode(mutate(token))


def test_another_secret_or_algorithm_is_refused() -> None:
    codec = HS256(SECRET)
    claims = {"exp": future()}
    with pytest.raises(TokenError, match="signature"):
        codec.decode(jwt.encode(claims, "t" * 64, algorithm="HS256"))
    with pytest.raises(TokenError, match="algorithm"):
        codec.decode(jwt.encode(claims, SECRET, algorithm="HS512"))
    with pytest.raises(TokenError, match="algorithm"):
        codec.decode(_forge({"alg": "none"}, claims))
    unsigned = _b64(b'{"alg":"none"}') + "." + _b64(json.dumps(claims).encode()) + "."
    with pytest.raises(TokenError):
        codec.decode(unsigned)
    with pytest.raises(TokenError, match="extensions"):
        codec.decode(_forge({"alg": "HS256", "crit": ["b64"], "b64": False}, claims))


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]",
        b"not json",
        b'"exp"',
        b'{"exp": 1} {"exp": 2}',  # trailing data after the object
        b'{"exp": 1',
        b"",
        '{"exp": 9999999999}'.encode("utf-16"),  # JSON, but not UTF-8 (RFC 7519)
        b'{"exp": 9999999999, "x": "\xff"}',  # not UTF-8 at all
    ],
)
def test_a_payload_that_is_not_a_json_object_is_refused(payload: bytes) -> None:
    with pytest.raises(TokenError, match="payload"):
        HS256(SECRET).decode(_signed(b'{"alg":"HS256","typ":"JWT"}', payload))


def test_a_payload_with_whitespace_around_and_inside_is_accepted() -> None:
    payload = b' \n{ "exp" : %d ,\t"sub": "u" }\r\n' % future()
    claims = HS256(SECRET).decode(_signed(b'{"alg":"HS256","typ":"JWT"}', payload))
    assert claims["sub"] == "u"


def test_time_claims() -> None:
    codec = HS256(SECRET)
    now = time.time()
    with pytest.raises(TokenExpired):
        codec.decode(codec.encode({"exp": int(now) - 1}))
    with pytest.raises(TokenExpired):
        codec.decode(codec.encode({"exp": 1000}), now=1000)  # exp is the first invalid second
    assert codec.decode(codec.encode({"exp": 1001}), now=1000) == {"exp": 1001}
    assert codec.decode(codec.encode({"exp": 1000.5}), now=1000) == {"exp": 1000.5}
    with pytest.raises(TokenError, match="lacks"):
        codec.decode(codec.encode({"sub": "alice"}))
    assert codec.decode(codec.encode({"sub": "alice"}), require=()) == {"sub": "alice"}
    for bad in ("soon", True, None, [1]):
        claims = {"exp": future(), "nbf": bad} if bad is not None else {"exp": "x"}
        with pytest.raises(TokenError):
            codec.decode(codec.encode(claims))
    with pytest.raises(TokenError, match="not valid yet"):
        codec.decode(codec.encode({"exp": future(), "nbf": future()}))
    with pytest.raises(TokenError, match="future"):
        codec.decode(codec.encode({"exp": future(), "iat": future()}))
    past = int(now) - 5
    assert codec.decode(codec.encode({"exp": future(), "nbf": past, "iat": past}))["iat"] == past
    lenient = HS256(SECRET, leeway=10)
    assert lenient.decode(lenient.encode({"exp": int(now) - 5}))["exp"] == int(now) - 5


def test_audience() -> None:
    codec = HS256(SECRET)
    signed_url = codec.encode({"exp": future(), "aud": "dataproxy"})
    assert codec.decode(signed_url, audience="dataproxy")["aud"] == "dataproxy"
    assert codec.decode(
        codec.encode({"exp": future(), "aud": ["x", "dataproxy"]}), audience="dataproxy"
    )
    with pytest.raises(TokenError, match="audience"):
        codec.decode(signed_url)  # a general check refuses a token meant for signed URLs
    with pytest.raises(TokenError, match="audience"):
        codec.decode(signed_url, audience="other")
    with pytest.raises(TokenError, match="audience"):
        codec.decode(codec.encode({"exp": future()}), audience="dataproxy")
