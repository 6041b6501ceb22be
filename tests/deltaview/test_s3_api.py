"""The S3 API emulation, driven by boto3 and raw HTTP against the real listener (RGW behind)."""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError
from conftest import ALICE, BUCKET, client, signed

from storage_proxy.deltaview.testing import ThreadedView


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def _all_keys(s3: Any, **kw: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="datalake", **kw).get("Contents", [])]


def _eu_file(s3: Any) -> str:
    return next(k for k in _all_keys(s3, Prefix="sales/region=eu/year=2024/"))


def test_list_buckets_has_one_virtual_bucket(s3: Any) -> None:
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["datalake"]


def test_list_top_level_with_delimiter_shows_readable_tables_only(s3: Any) -> None:
    r = s3.list_objects_v2(Bucket="datalake", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["events/", "sales/"]
    assert r["KeyCount"] == 2 and r["IsTruncated"] is False


def test_listing_hides_denied_partitions(s3: Any, backend: Any) -> None:
    keys = _all_keys(s3, Prefix="sales/")
    assert keys and all(
        k.startswith("sales/_delta_log/") or k.startswith("sales/region=eu/") for k in keys
    )
    assert sum(1 for k in keys if k.endswith(".parquet")) == 4  # 2 eu partitions x 2 commits
    r = s3.list_objects_v2(Bucket="datalake", Prefix="sales/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["sales/_delta_log/", "sales/region=eu/"]
    assert _all_keys(s3, Prefix="sales/region=us/") == []


def test_paging_with_small_max_keys_visits_every_key_once(s3: Any) -> None:
    everything = _all_keys(s3)
    seen: list[str] = []
    kw: dict[str, Any] = {"MaxKeys": 2}
    while True:
        r = s3.list_objects_v2(Bucket="datalake", **kw)
        assert r["KeyCount"] == len(r.get("Contents", [])) <= 2
        seen += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        kw["ContinuationToken"] = r["NextContinuationToken"]
    assert seen == everything == sorted(everything)


def test_common_prefixes_count_once_against_max_keys(s3: Any) -> None:
    r = s3.list_objects_v2(Bucket="datalake", Prefix="sales/", Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["sales/_delta_log/"]
    assert r["IsTruncated"] is True and r["KeyCount"] == 1
    r2 = s3.list_objects_v2(
        Bucket="datalake",
        Prefix="sales/",
        Delimiter="/",
        MaxKeys=1,
        ContinuationToken=r["NextContinuationToken"],
    )
    assert [p["Prefix"] for p in r2["CommonPrefixes"]] == ["sales/region=eu/"]
    assert r2["IsTruncated"] is False


def test_start_after(s3: Any) -> None:
    keys = _all_keys(s3)
    assert _all_keys(s3, StartAfter=keys[2]) == keys[3:]


def test_encoding_type_url_and_fetch_owner(s3: Any) -> None:
    r = s3.list_objects_v2(
        Bucket="datalake", Prefix="sales/region=eu/", EncodingType="url", FetchOwner=True
    )
    # asked for explicitly, botocore leaves the keys encoded
    assert r["Contents"] and all(o["Key"].startswith("sales/region%3Deu/") for o in r["Contents"])
    assert r["Prefix"] == "sales/region%3Deu/" and r["EncodingType"] == "url"
    assert all(o["Owner"]["ID"] for o in r["Contents"])
    plain = s3.list_objects_v2(Bucket="datalake", Prefix="sales/region=eu/")
    assert all("Owner" not in o for o in plain["Contents"])


@pytest.mark.parametrize("bad", ["-1", "abc"])
def test_invalid_max_keys_is_invalid_argument(view: ThreadedView, bad: str) -> None:
    req = signed("GET", f"{view.endpoint}/datalake?list-type=2&max-keys={bad}")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400
    assert b"<Code>InvalidArgument</Code>" in e.value.read()


def test_max_keys_is_capped_at_1000(s3: Any) -> None:
    assert s3.list_objects_v2(Bucket="datalake", MaxKeys=5000)["MaxKeys"] == 1000


def test_head_and_get_headers(s3: Any, backend: Any) -> None:
    key = _eu_file(s3)
    direct = backend.head_object(Bucket=BUCKET, Key="warehouse/" + key)
    h = s3.head_object(Bucket="datalake", Key=key)
    assert h["ContentLength"] == direct["ContentLength"]
    assert h["ETag"] == direct["ETag"] and h["ETag"].startswith('"')
    assert h["AcceptRanges"] == "bytes"
    raw = h["ResponseMetadata"]["HTTPHeaders"]
    assert parsedate_to_datetime(raw["last-modified"]) == direct["LastModified"]
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", raw["last-modified"])
    assert raw["x-amz-request-id"]
    body = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
    assert body == backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [("bytes=0-9", 0, 9), ("bytes=10-", 10, None), ("bytes=-7", None, None)],
)
def test_single_range(
    s3: Any, backend: Any, spec: str, first: int | None, last: int | None
) -> None:
    key = _eu_file(s3)
    full = backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    size = len(full)
    if spec == "bytes=-7":
        first, last = size - 7, size - 1
    last = size - 1 if last is None else last
    assert first is not None
    r = s3.get_object(Bucket="datalake", Key=key, Range=spec)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes {first}-{last}/{size}"
    assert r["Body"].read() == full[first : last + 1]
    assert r["ContentLength"] == last - first + 1


def test_unsatisfiable_range_is_416(s3: Any) -> None:
    key = _eu_file(s3)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="datalake", Key=key, Range="bytes=99999999-")
    assert _code(e) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_errors_are_s3_xml_with_request_id(view: ThreadedView, s3: Any) -> None:
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "datalake", "Key": "sales/nope"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 403  # not in the log: denied, not revealed as missing
    doc = ElementTree.fromstring(e.value.read())
    assert doc.tag == "Error"
    assert doc.findtext("Code") == "AccessDenied"
    assert doc.findtext("Message") and doc.findtext("Resource") == "/datalake/sales/nope"
    assert doc.findtext("RequestId") == e.value.headers["x-amz-request-id"]


def test_no_such_bucket_and_no_such_key(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="other")
    assert _code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="datalake", Key="unknown-table/x.parquet")
    assert _code(e) == "NoSuchKey"


def test_head_error_has_no_body(view: ThreadedView, s3: Any) -> None:
    url = s3.generate_presigned_url("head_object", Params={"Bucket": "datalake", "Key": "sales/x"})
    req = urllib.request.Request(url, method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403 and e.value.headers["x-amz-request-id"]
    assert e.value.headers.get("Content-Length") in (None, "0")


def test_method_not_allowed(view: ThreadedView) -> None:
    req = urllib.request.Request(view.endpoint + "/datalake/sales/x", method="PATCH")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code in (403, 405)  # anonymous is refused before routing
    req = signed("PATCH", view.endpoint + "/datalake/sales/x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 405 and b"MethodNotAllowed" in e.value.read()


def test_read_only_refuses_writes_before_the_backend(s3: Any, backend: Any) -> None:
    for call in (
        lambda: s3.put_object(Bucket="datalake", Key="sales/region=eu/x.parquet", Body=b"x"),
        lambda: s3.put_object(Bucket="datalake", Key="sales/_delta_log/x.json", Body=b"x"),
        lambda: s3.delete_object(Bucket="datalake", Key=_eu_file(s3)),
        lambda: s3.create_multipart_upload(Bucket="datalake", Key="sales/region=eu/y"),
        lambda: s3.delete_objects(Bucket="datalake", Delete={"Objects": [{"Key": "sales/a"}]}),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert _code(e) == "AccessDenied"
    listed = backend.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/sales/region=eu/")
    assert not any(o["Key"].endswith("/x.parquet") for o in listed["Contents"])
    assert len(_all_keys(s3, Prefix="sales/region=eu/")) == 4


def test_anonymous_is_denied_by_default(view: ThreadedView) -> None:
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(view.endpoint + "/datalake?list-type=2")
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()


def test_anonymous_when_configured(make_view: Any) -> None:
    v = make_view(anonymousUser="guest")
    body = urllib.request.urlopen(v.endpoint + "/datalake?list-type=2&prefix=sales/").read()
    assert b"region=eu" in body and b"region=us" not in body


def test_unknown_key_and_bad_signature(view: ThreadedView) -> None:
    with pytest.raises(ClientError) as e:
        client(view.endpoint, ("AKIDNOBODY", "x", "x")).list_buckets()
    assert _code(e) == "InvalidAccessKeyId"
    with pytest.raises(ClientError) as e:
        client(view.endpoint, (ALICE[0], "wrong-secret", "alice")).list_buckets()
    assert _code(e) == "SignatureDoesNotMatch"


def test_clock_skew(view: ThreadedView, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    real = botocore.auth.datetime.datetime

    class Skewed(real):  # type: ignore[misc, valid-type]
        @classmethod
        def utcnow(cls) -> Any:
            return real.utcnow().replace(year=2020)

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.now(tz or UTC).replace(year=2020)

    monkeypatch.setattr(botocore.auth.datetime, "datetime", Skewed)
    with pytest.raises(ClientError) as e:
        client(view.endpoint).list_buckets()
    assert _code(e) == "RequestTimeTooSkewed"


def test_presigned_query_auth_works_and_expires(s3: Any) -> None:
    key = _eu_file(s3)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "datalake", "Key": key})
    assert urllib.request.urlopen(url).read()[:4] == b"PAR1"
    old = url.replace(re.search(r"X-Amz-Date=(\d{8})", url).group(1), "20200101")  # type: ignore[union-attr]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(old)
    assert e.value.code == 403
    assert datetime.now(UTC).year > 2020
