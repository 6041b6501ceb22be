"""Delta Sharing on the view, driven by the stock ``delta-sharing`` client from PyPI against the
real S3 server: the same users and partition rules as the S3 view, bearer tokens with their own
expiry, file URLs presigned by RGW or served by the view, hints that never widen the gate."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import delta_sharing
import pytest
from conftest import BUCKET, sales_rows
from deltalake import DeltaTable, write_deltalake
from s3_server import S3Endpoint

from storage_proxy.deltaview.db import Database
from storage_proxy.deltaview.sharing.recipients import digest

TOKEN = "alice-sharing-token-" + uuid.uuid4().hex
EXPIRED = "expired-sharing-token-" + uuid.uuid4().hex
SHARES = {"lake": {"default": ["sales", "cdf", "events"]}}
EU = sorted([("eu", "2023", 1), ("eu", "2024", 2), ("eu", "2024", 5)])
EU_BOTH = sorted(EU + [(r, y, a + 100) for r, y, a in EU])


@pytest.fixture(scope="module")
def cdf_table(s3srv: S3Endpoint, backend: Any) -> str:
    """Change data feed on: v0 write, v1 append, v2 delete of one eu and one us row."""
    url = f"s3://{BUCKET}/cdf/{uuid.uuid4().hex[:8]}"
    opts = s3srv.storage_options()
    cfg = {"delta.enableChangeDataFeed": "true"}
    write_deltalake(
        url, sales_rows(), partition_by=["region"], storage_options=opts, configuration=cfg
    )
    write_deltalake(
        url, sales_rows(100), partition_by=["region"], storage_options=opts, mode="append"
    )
    DeltaTable(url, storage_options=opts).delete("amount = 5 OR amount = 3")
    return url


def _sharing(**extra: Any) -> dict[str, Any]:
    cfg = {
        "enabled": True,
        "shares": SHARES,
        "recipients": [
            {"token": TOKEN, "user": "alice", "expires": "2099-01-01T00:00:00Z"},
            {"token": EXPIRED, "user": "alice", "expires": "2001-01-01T00:00:00Z"},
        ],
    }
    cfg.update(extra)
    return cfg


def _profile(tmp_path: Path, endpoint: str, token: str = TOKEN) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.share"
    path.write_text(
        json.dumps(
            {
                "shareCredentialsVersion": 1,
                "endpoint": endpoint + "/delta-sharing",
                "bearerToken": token,
            }
        )
    )
    return str(path)


@pytest.fixture
def sharing_view(make_view: Any, tables: dict[str, str], cdf_table: str) -> Any:
    def make(**sharing: Any) -> Any:
        return make_view(
            tables={**tables, "cdf": cdf_table},
            allowedPartitions={
                "sales": [{"region": "eu"}],
                "events": [{}],
                "cdf": [{"region": "eu"}],
            },
            sharing=_sharing(**sharing),
        )

    return make


def _rows(df: Any) -> list[tuple[str, str, int]]:
    return sorted(zip(df["region"], df["year"], (int(a) for a in df["amount"]), strict=True))


def _request(v: Any, path: str, token: str | None = TOKEN, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        v.endpoint + "/delta-sharing" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read().decode()
            return r.status, [json.loads(x) for x in text.splitlines() if x]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_stock_client_lists_only_what_the_recipient_may_read(
    sharing_view: Any, tmp_path: Path
) -> None:
    v = sharing_view()
    client = delta_sharing.SharingClient(_profile(tmp_path, v.endpoint))
    assert [s.name for s in client.list_shares()] == ["lake"]
    names = sorted(t.name for t in client.list_all_tables())
    assert names == ["cdf", "events", "sales"]


@pytest.mark.parametrize("delta_format", [None, True])
def test_load_as_pandas_returns_exactly_the_allowed_rows(
    sharing_view: Any, tmp_path: Path, delta_format: bool | None
) -> None:
    v = sharing_view()
    url = _profile(tmp_path, v.endpoint) + "#lake.default.sales"
    df = delta_sharing.load_as_pandas(url, use_delta_format=delta_format)
    assert _rows(df) == EU_BOTH
    limited = delta_sharing.load_as_pandas(url, limit=2, use_delta_format=delta_format)
    assert len(limited) == 2 and set(limited["region"]) == {"eu"}


def test_proxy_served_file_urls(sharing_view: Any, tmp_path: Path) -> None:
    v = sharing_view(fileUrls="proxy", urlExpiry=2)
    url = _profile(tmp_path, v.endpoint) + "#lake.default.sales"
    assert _rows(delta_sharing.load_as_pandas(url)) == EU_BOTH
    status, lines = _request(v, "/shares/lake/schemas/default/tables/sales/query", body={})
    files = [x["file"] for x in lines if "file" in x]
    assert status == 200 and all(
        f["url"].startswith(v.endpoint + "/delta-sharing/files/") for f in files
    )
    with urllib.request.urlopen(files[0]["url"]) as r:
        assert r.read(4) == b"PAR1"
    forged = files[0]["url"][:-4] + "0000"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(forged)
    assert e.value.code == 403
    time.sleep(2.2)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(files[0]["url"])
    assert e.value.code == 403


def test_presigned_file_urls_expire_as_configured(sharing_view: Any) -> None:
    v = sharing_view(urlExpiry=120)
    before = time.time() * 1000
    status, lines = _request(v, "/shares/lake/schemas/default/tables/sales/query", body={})
    files = [x["file"] for x in lines if "file" in x]
    assert status == 200 and len(files) == 4
    assert all(
        "X-Amz-Expires=120" in f["url"] and f["url"].startswith(v.cfg.s3.endpoint) for f in files
    )
    assert all(before + 110_000 < f["expirationTimestamp"] < before + 130_000 for f in files)
    assert {f["partitionValues"]["region"] for f in files} == {"eu"}


def test_hints_never_widen_the_gate(sharing_view: Any) -> None:
    v = sharing_view()
    path = "/shares/lake/schemas/default/tables/sales/query"

    def files(body: dict[str, Any]) -> list[dict[str, Any]]:
        status, lines = _request(v, path, body=body)
        assert status == 200, lines
        return [x["file"] for x in lines if "file" in x]

    def eq(value: str) -> str:
        return json.dumps(
            {
                "op": "equal",
                "children": [
                    {"op": "column", "name": "region", "valueType": "string"},
                    {"op": "literal", "value": value, "valueType": "string"},
                ],
            }
        )

    assert files({"jsonPredicateHints": eq("us")}) == []
    assert len(files({"jsonPredicateHints": eq("eu")})) == 4
    assert len(files({"predicateHints": ["region = 'us'"]})) == 4  # SQL hints: ignored
    assert len(files({"jsonPredicateHints": "not json"})) == 4
    year = json.dumps(
        {
            "op": "equal",
            "children": [
                {"op": "column", "name": "year", "valueType": "string"},
                {"op": "literal", "value": "2023", "valueType": "string"},
            ],
        }
    )
    assert {f["partitionValues"]["year"] for f in files({"jsonPredicateHints": year})} == {"2023"}
    assert 1 <= len(files({"limitHint": 1})) < 4
    assert len(files({"version": 0})) == 2
    assert len(files({"timestamp": "2099-01-01T00:00:00Z"})) == 4  # time travel by time
    status, body = _request(v, path, body={"version": 99})
    assert status == 400 and body["errorCode"] == "INVALID_PARAMETER_VALUE"
    status, body = _request(v, path, body={"timestamp": "2001-01-01T00:00:00Z"})
    assert status == 400 and body["errorCode"] == "INVALID_PARAMETER_VALUE"


def test_table_changes_of_allowed_partitions_only(sharing_view: Any, tmp_path: Path) -> None:
    v = sharing_view()
    url = _profile(tmp_path, v.endpoint) + "#lake.default.cdf"
    df = delta_sharing.load_table_changes_as_pandas(url, starting_version=0, ending_version=2)
    assert set(df["region"]) == {"eu"}
    inserted = sorted(
        int(a) for a, t in zip(df["amount"], df["_change_type"], strict=True) if t == "insert"
    )
    assert inserted == [1, 2, 5, 101, 102, 105]
    deleted = sorted(
        int(a) for a, t in zip(df["amount"], df["_change_type"], strict=True) if t == "delete"
    )
    assert deleted == [5]
    status, body = _request(
        v, "/shares/lake/schemas/default/tables/sales/changes?startingVersion=0"
    )
    assert status == 400 and body["errorCode"] == "INVALID_PARAMETER_VALUE"


def test_tokens_and_errors(sharing_view: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    v = sharing_view()
    for token in (None, "wrong-token-0123456789", EXPIRED):
        status, body = _request(v, "/shares", token=token)
        assert status == 401 and body["errorCode"] == "UNAUTHENTICATED", token
    status, body = _request(v, "/shares/lake/schemas/default/tables/secret/metadata")
    assert status == 404 and body["errorCode"] == "RESOURCE_DOES_NOT_EXIST"
    status, body = _request(v, "/shares/nope")
    assert status == 404
    status, body = _request(
        v, "/shares/lake/schemas/default/tables/sales/query", body={"limitHint": -1}
    )
    assert status == 400 and body["errorCode"] == "INVALID_PARAMETER_VALUE"
    status, body = _request(v, "/shares?maxResults=0")
    assert status == 400
    status, lines = _request(v, "/shares/lake/schemas/default/tables/sales/metadata")
    assert status == 200 and lines[1]["metaData"]["partitionColumns"] == ["region", "year"]
    assert TOKEN not in caplog.text and EXPIRED not in caplog.text


def test_database_recipients_have_their_own_expiry(
    make_view: Any, tables: dict[str, str], tmp_path: Path
) -> None:
    import asyncio

    path = tmp_path / "share.sqlite3"

    async def seed() -> None:
        db = await Database.open(path)
        await db.add_rule("bob", "sales", {"region": "us"})
        await db.add_sharing_recipient(
            digest("bob-token-0123456789"), "bob", "2099-01-01T00:00:00+00:00"
        )
        await db.add_sharing_recipient(
            digest("old-token-0123456789"), "bob", "2001-01-01T00:00:00+00:00"
        )
        await db.close()

    asyncio.run(seed())
    v = make_view(
        databaseEnabled=True,
        database=str(path),
        allowedPartitions={},
        sharing={"enabled": True, "shares": {"lake": {"default": ["sales"]}}},
    )
    status, lines = _request(
        v, "/shares/lake/schemas/default/tables/sales/query", token="bob-token-0123456789", body={}
    )
    assert status == 200
    assert {x["file"]["partitionValues"]["region"] for x in lines if "file" in x} == {"us"}
    assert _request(v, "/shares", token="old-token-0123456789")[0] == 401
