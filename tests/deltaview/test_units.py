"""Fast unit tests: config schema, SigV4 checking, ranges, tokens, z85, partition matching."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from storage_proxy.core.errors import ConfigError
from storage_proxy.deltaview import listing, ranges, sigv4
from storage_proxy.deltaview.config import apply_env, load_json, validate
from storage_proxy.deltaview.deltalog import Known, Snapshot, z85_decode
from storage_proxy.deltaview.errors import S3Error, S3ErrorCode
from storage_proxy.deltaview.gate import build_view, matches

# -- config -------------------------------------------------------------------------------------


def test_config_defaults_and_both_key_styles() -> None:
    c = validate({})
    assert (c.port, c.metrics_port, c.read_only, c.get_mode, c.proxy_partial) == (
        18080,
        9090,
        True,
        "proxy",
        False,
    )
    k = validate({"read-only": False, "table-mapping": {"t": "s3://bkt/a/b"}, "get-mode": "proxy"})
    assert not k.read_only and k.table_mapping["t"].bucket == "bkt"
    assert k.table_mapping["t"].prefix == "a/b/"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"port": "x"}, "port"),
        ({"getMode": "fast"}, "getMode"),
        ({"tableMapping": {"t": "http://x"}}, "tableMapping"),
        ({"allowedPartitions": {"nope": [{}]}}, "nope"),
        ({"credentials": [{"accessKeyId": "AKID"}]}, "credentials"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        validate(raw)


def test_env_overrides_and_json_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"port": 1, "tableMapping": {"t": "s3://bkt/t"}}))
    env = {
        "PROXY_PORT": "2",
        "PROXY_READ_ONLY": "false",
        "PROXY_ALLOWED_PARTITIONS": '{"t": [{"region": ["eu", "us"]}]}',
        "PROXY_S3_ENDPOINT": "http://127.0.0.1:9000",
    }
    c = load_json(path, env)
    assert c.port == 2 and not c.read_only and c.s3.endpoint == "http://127.0.0.1:9000"
    assert c.allowed_partitions == {"t": [{"region": ("eu", "us")}]}
    assert apply_env({}, {})["s3"] == {}
    with pytest.raises(ConfigError, match="JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_json(tmp_path / "bad.json", {})


# -- SigV4 --------------------------------------------------------------------------------------

CREDS = Credentials("AKIDEXAMPLE", "secret/key+1")
URL = "http://127.0.0.1:18080/datalake/t/region%3Deu/a%20b.parquet?x-id=GetObject"


def _parts(req: AWSRequest) -> tuple[str, str, CIMultiDict[str]]:
    rest = req.url.split("://", 1)[1]
    path = "/" + rest.split("/", 1)[1]
    raw_path, _, query = path.partition("?")
    headers = CIMultiDict(req.headers.items())
    headers["Host"] = "127.0.0.1:18080"
    return raw_path, query, headers


def _check(req: AWSRequest, secret: str = "secret/key+1", now: datetime | None = None) -> None:
    raw_path, query, headers = _parts(req)
    sr = sigv4.parse(query, headers)
    assert sr is not None
    sigv4.verify(req.method, raw_path, query, headers, sr, secret, now or datetime.now(UTC))


def test_header_signature_verifies_and_detects_tampering() -> None:
    req = AWSRequest("GET", URL, headers={"Range": "bytes=0-1"})
    S3SigV4Auth(CREDS, "s3", "eu-west-1").add_auth(req)
    _check(req)
    with pytest.raises(S3Error) as e:
        _check(req, secret="other")
    assert e.value.error is S3ErrorCode.SIGNATURE_DOES_NOT_MATCH
    req.url = URL.replace("eu", "us")
    with pytest.raises(S3Error):
        _check(req)


def test_presigned_signature_verifies_and_expires() -> None:
    req = AWSRequest("GET", URL)
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(req)
    _check(req)
    with pytest.raises(S3Error) as e:
        _check(req, now=datetime.now(UTC) + timedelta(seconds=120))
    assert e.value.error is S3ErrorCode.ACCESS_DENIED


def test_clock_skew_over_15_minutes() -> None:
    req = AWSRequest("GET", URL)
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    _check(req, now=datetime.now(UTC) + timedelta(minutes=14))
    with pytest.raises(S3Error) as e:
        _check(req, now=datetime.now(UTC) + timedelta(minutes=16))
    assert e.value.error is S3ErrorCode.REQUEST_TIME_TOO_SKEWED


def test_unsigned_request_parses_as_anonymous() -> None:
    assert sigv4.parse("list-type=2", CIMultiDict()) is None
    with pytest.raises(S3Error):
        sigv4.parse("", CIMultiDict({"Authorization": "AWS AKID:sig"}))


# -- ranges, tokens, z85, partitions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-200", 100, (90, 99)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=0-1,5-6", 100, None),
        ("items=0-1", 100, None),
        (None, 100, None),
    ],
)
def test_ranges(header: str | None, size: int, span: tuple[int, int] | None) -> None:
    assert ranges.resolve(header, size) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(S3Error) as e:
        ranges.resolve(header, size)
    assert e.value.error is S3ErrorCode.INVALID_RANGE
    assert e.value.headers["Content-Range"] == f"bytes */{size}"


def test_continuation_tokens_round_trip_and_reject_garbage() -> None:
    assert listing.decode_token(listing.encode_token("t/a b/ü")) == "t/a b/ü"
    with pytest.raises(S3Error):
        listing.decode_token("not-a-token")


def test_z85_decodes_the_spec_example() -> None:
    assert z85_decode("HelloWorld") == bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])


def test_rule_matching_and_views() -> None:
    assert matches({"region": "eu", "year": "2024"}, {"region": ("eu",)})
    assert not matches({"region": "us"}, {"region": ("eu",)})
    assert not matches({"region": None}, {"region": ("eu",)})
    assert matches({"region": "us"}, {})
    snap = Snapshot(3)
    known = Known(
        {
            "region=eu/a.parquet": {"region": "eu"},
            "dv/x.bin": {"region": "eu"},
            "region=us/b.parquet": {"region": "us"},
            "dv/y.bin": {"region": "us"},
            "_change_data/us.parquet": {"region": "us"},
        }
    )
    view = build_view(snap, [{"region": ("eu",)}], known)
    assert view.allows("region=eu/a.parquet") and view.allows("dv/x.bin")
    assert not view.allows("region=us/b.parquet") and not view.allows("dv/y.bin")
    assert not view.allows("_change_data/us.parquet")
    assert view.allows("_delta_log/00000000000000000000.json")
    assert not view.allows("region=eu/unknown.parquet")  # no log names it
    nothing = build_view(snap, [], known)
    assert not nothing.allows("_delta_log/00000000000000000000.json")


def test_signature_holds_whether_the_path_arrives_encoded_or_not() -> None:
    """botocore signs ``year%3D2024``; some HTTP clients send ``year=2024``: both verify."""
    from datetime import UTC, datetime

    import boto3
    import botocore.config
    from multidict import CIMultiDict

    from storage_proxy.deltaview import sigv4
    from storage_proxy.deltaview.errors import S3Error

    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "t/year=2024/p.parquet"}, ExpiresIn=60
    )
    path, _, query = url.split("127.0.0.1:9", 1)[1].partition("?")
    assert "%3D" in path
    headers = CIMultiDict({"Host": "127.0.0.1:9"})
    signed = sigv4.parse(query, headers)
    assert signed is not None
    now = datetime.now(UTC)
    for wire_path in (path, path.replace("%3D", "=")):
        sigv4.verify("GET", wire_path, query, headers, signed, "SK", now)
    with pytest.raises(S3Error):
        sigv4.verify("GET", path.replace("2024", "2025"), query, headers, signed, "SK", now)
