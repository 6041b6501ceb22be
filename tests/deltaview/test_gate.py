"""The partition gate over real tables: log-derived partitions, refresh, removed and stray files,
cdc and deletion-vector files, unreadable logs."""

from __future__ import annotations

import json
import time
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from conftest import BUCKET, client, sales_rows
from deltalake import write_deltalake
from s3_server import S3Endpoint


def _keys(s3: Any, prefix: str) -> list[str]:
    out, kw = [], {"Prefix": prefix}
    while True:
        r = s3.list_objects_v2(Bucket="datalake", **kw)
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            return out
        kw["ContinuationToken"] = r["NextContinuationToken"]


def _denied(call: Any) -> bool:
    try:
        call()
    except ClientError as e:
        # HEAD errors carry no body: botocore reports the status as the code
        return e.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_partition_comes_from_the_log_not_the_directory(
    make_view: Any, s3srv: S3Endpoint, backend: Any, fresh_table: str
) -> None:
    """A file the log places in region=us but stored under a region=eu directory is denied."""
    prefix = fresh_table.removeprefix(f"s3://{BUCKET}/") + "/"
    listed = backend.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "region=us/")["Contents"]
    us_path = listed[0]["Key"][len(prefix) :]
    disguised = "region=eu/year=2024/disguised.parquet"
    backend.copy_object(
        Bucket=BUCKET,
        Key=prefix + disguised,
        CopySource={"Bucket": BUCKET, "Key": prefix + us_path},
    )
    commit = {
        "add": {
            "path": disguised,
            "partitionValues": {"region": "us", "year": "2024"},
            "size": 10,
            "modificationTime": 0,
            "dataChange": True,
        }
    }
    backend.put_object(
        Bucket=BUCKET, Key=prefix + "_delta_log/00000000000000000001.json", Body=json.dumps(commit)
    )
    v = make_view(tables={"t": fresh_table}, allowedPartitions={"t": [{"region": "eu"}]})
    s3 = client(v.endpoint)
    assert _denied(lambda: s3.get_object(Bucket="datalake", Key="t/" + disguised))
    assert "t/" + disguised not in _keys(s3, "t/")
    # a stray file in an allowed directory that no add action names: denied and not listed
    backend.put_object(Bucket=BUCKET, Key=prefix + "region=eu/year=2024/stray.parquet", Body=b"x")
    assert _denied(
        lambda: s3.head_object(Bucket="datalake", Key="t/region=eu/year=2024/stray.parquet")
    )
    assert not any(k.endswith("stray.parquet") for k in _keys(s3, "t/"))


def test_a_map_naming_fewer_columns_allows_every_value_of_the_others(
    make_view: Any, tables: dict[str, str]
) -> None:
    v = make_view(
        allowedPartitions={"sales": [{"year": "2024"}, {"region": "asia", "year": "2023"}]}
    )
    keys = [k for k in _keys(client(v.endpoint), "sales/") if k.endswith(".parquet")]
    assert {k.split("/")[1] + "/" + k.split("/")[2] for k in keys} == {
        "region=eu/year=2024",
        "region=us/year=2024",
        "region=asia/year=2024",
    }


def test_new_commit_is_seen_without_restart(
    make_view: Any, s3srv: S3Endpoint, backend: Any, fresh_table: str
) -> None:
    v = make_view(tables={"t": fresh_table}, allowedPartitions={"t": [{"region": "eu"}]})
    s3 = client(v.endpoint)
    before = set(_keys(s3, "t/region=eu/"))
    old_eu = sorted(before)[0]
    assert s3.get_object(Bucket="datalake", Key=old_eu)["Body"].read(4) == b"PAR1"
    # overwrite: new files are added, every old one is removed
    write_deltalake(
        fresh_table,
        sales_rows(7),
        partition_by=["region", "year"],
        mode="overwrite",
        storage_options=s3srv.storage_options(),
    )
    prefix = fresh_table.removeprefix(f"s3://{BUCKET}/") + "/"
    stored = backend.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "region=eu/")["Contents"]
    added = {"t/" + o["Key"][len(prefix) :] for o in stored} - before
    assert added
    for key in added:  # readable at once: a miss forces a log check
        assert s3.get_object(Bucket="datalake", Key=key)["Body"].read(4) == b"PAR1"
    time.sleep(0.25)  # logCheckInterval: listings follow within it
    # removed files of allowed partitions stay readable and listed: time travel reads them
    assert set(_keys(s3, "t/region=eu/")) == added | before
    assert s3.get_object(Bucket="datalake", Key=old_eu)["Body"].read(4) == b"PAR1"
    assert not [k for k in _keys(s3, "t/") if "region=us" in k]
    # the new commit is in the caller's log at once: its eu adds and removes, nothing of us
    log = [k for k in _keys(s3, "t/_delta_log/") if k.endswith(".json")]
    assert log[-1].endswith("00000000000000000001.json")
    actions = [
        json.loads(line)
        for line in s3.get_object(Bucket="datalake", Key=log[-1])["Body"].read().splitlines()
    ]
    adds = [a["add"] for a in actions if "add" in a]
    removes = [a["remove"] for a in actions if "remove" in a]
    assert {f["partitionValues"]["region"] for f in adds + removes} == {"eu"}
    assert len(adds) == len(added) and len(removes) == len(before)


def test_unreadable_log_denies(make_view: Any, backend: Any, fresh_table: str) -> None:
    prefix = fresh_table.removeprefix(f"s3://{BUCKET}/") + "/"
    v = make_view(tables={"t": fresh_table}, allowedPartitions={"t": [{}]})
    s3 = client(v.endpoint)
    data = [k for k in _keys(s3, "t/") if k.endswith(".parquet")]
    assert data
    backend.put_object(
        Bucket=BUCKET, Key=prefix + "_delta_log/00000000000000000001.json", Body=b"{not json"
    )
    time.sleep(0.25)
    assert _denied(lambda: s3.get_object(Bucket="datalake", Key=data[0]))
    assert _keys(s3, "t/") == []


def _dv_table(backend: Any, prefix: str) -> None:
    """A hand-written log with deletion vectors and change-data files (delta-rs writes no DVs)."""
    log = [
        {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7}},
        {
            "metaData": {
                "id": "x",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": "{}",
                "partitionColumns": ["region"],
                "configuration": {},
            }
        },
    ]
    for region, z85 in (("eu", "vCi#1Ph9z6gZ2gw.Glxa"), ("us", "wi5b=000010000siXQKl")):
        log.append(
            {
                "add": {
                    "path": f"region={region}/part-0.parquet",
                    "partitionValues": {"region": region},
                    "size": 1,
                    "modificationTime": 0,
                    "dataChange": True,
                    "deletionVector": {
                        "storageType": "u",
                        "pathOrInlineDv": f"ab{z85}",
                        "offset": 1,
                        "sizeInBytes": 10,
                        "cardinality": 1,
                    },
                }
            }
        )
        log.append(
            {
                "cdc": {
                    "path": f"_change_data/region={region}/cdc-0.parquet",
                    "partitionValues": {"region": region},
                    "size": 1,
                    "dataChange": False,
                }
            }
        )
    body = "\n".join(json.dumps(a) for a in log)
    backend.put_object(
        Bucket=BUCKET, Key=prefix + "_delta_log/00000000000000000000.json", Body=body
    )


def test_cdc_and_deletion_vector_files_follow_their_partition(make_view: Any, backend: Any) -> None:
    from storage_proxy.deltaview.deltalog import dv_relative_path

    prefix = "handmade/dv/"
    _dv_table(backend, prefix)
    files = {}
    for region, z85 in (("eu", "vCi#1Ph9z6gZ2gw.Glxa"), ("us", "wi5b=000010000siXQKl")):
        dv = dv_relative_path({"storageType": "u", "pathOrInlineDv": f"ab{z85}"}, "")
        assert dv is not None and dv.startswith("ab/deletion_vector_")
        files[region] = [dv, f"_change_data/region={region}/cdc-0.parquet"]
        for rel in files[region]:
            backend.put_object(Bucket=BUCKET, Key=prefix + rel, Body=region.encode())
    v = make_view(
        tables={"dv": f"s3://{BUCKET}/handmade/dv"}, allowedPartitions={"dv": [{"region": "eu"}]}
    )
    s3 = client(v.endpoint)
    for rel in files["eu"]:
        assert s3.get_object(Bucket="datalake", Key="dv/" + rel)["Body"].read() == b"eu"
    for rel in files["us"]:
        assert _denied(lambda rel=rel: s3.get_object(Bucket="datalake", Key="dv/" + rel))
    listed = _keys(s3, "dv/")
    assert all("dv/" + rel in listed for rel in files["eu"])
    assert not any("dv/" + rel in listed for rel in files["us"])


def test_table_without_rules_is_invisible(view: Any) -> None:
    s3 = client(view.endpoint)
    assert _keys(s3, "secret/") == []
    assert _denied(
        lambda: s3.get_object(Bucket="datalake", Key="secret/_delta_log/00000000000000000000.json")
    )


@pytest.mark.parametrize("n", [1])
def test_delta_log_passes_through_for_allowed_callers(view: Any, n: int) -> None:
    s3 = client(view.endpoint)
    body = s3.get_object(Bucket="datalake", Key="sales/_delta_log/00000000000000000001.json")
    assert b'"add"' in body["Body"].read()
    assert pa is not None and n == 1
