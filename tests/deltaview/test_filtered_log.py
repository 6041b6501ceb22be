"""The filtered ``_delta_log``, attacked: a caller scans everything readable under the log for
denied values and statistics; sizes and ETags agree across LIST, HEAD and GET; Range on rewritten
files; one build per rule set; whole-table callers get the stored bytes. The table's partition
values need escaping (``a b``, ``k=v``, ``ü``, ``%``); its checkpoints are deltalake's own (single
file) and a multi-part one split from it."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE, BUCKET, CAROL, base_config, client
from deltalake import DeltaTable, write_deltalake
from s3_server import S3Endpoint
from test_clients import read_through

from storage_proxy.deltaview.config import validate
from storage_proxy.deltaview.context import VIEW
from storage_proxy.deltaview.testing import ThreadedView

ALLOWED = ["a b", "k=v", "ü", "%"]
SECRET_LABEL = "secret-label-QX7"
SECRET_NOTE = "TOPSECRET-NOTE-Z9"
SECRET_AMOUNT = 987654321
#: What must never appear in anything the caller can read under _delta_log/.
NEEDLES = [SECRET_LABEL, quote(SECRET_LABEL), SECRET_NOTE, str(SECRET_AMOUNT)]


def _rows(n: int) -> pa.Table:
    labels = [*ALLOWED, SECRET_LABEL]
    return pa.table(
        {
            "label": labels,
            "note": [f"note-{i}-{n}" for i in range(4)] + [SECRET_NOTE],
            "amount": [n * 10 + i for i in range(4)] + [SECRET_AMOUNT],
        }
    )


def _split_checkpoint(s3: Any, prefix: str, version: int) -> None:
    """Turn deltalake's single-file checkpoint of ``version`` into a two-part one."""
    single = f"{prefix}_delta_log/{version:020d}.checkpoint.parquet"
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=single)["Body"].read()))
    half = table.num_rows // 2
    for i, part in enumerate((table.slice(0, half), table.slice(half)), start=1):
        buf = io.BytesIO()
        pq.write_table(part, buf)
        name = f"{prefix}_delta_log/{version:020d}.checkpoint.{i:010d}.0000000002.parquet"
        s3.put_object(Bucket=BUCKET, Key=name, Body=buf.getvalue())
    s3.delete_object(Bucket=BUCKET, Key=single)
    last = {"version": version, "size": table.num_rows, "parts": 2}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}_delta_log/_last_checkpoint", Body=json.dumps(last))


@pytest.fixture(scope="module")
def esc_table(s3srv: S3Endpoint, backend: Any) -> str:
    """v0 write, v1 append + checkpoint, v2 append, v3 delete quoting a denied value, v4 append
    + a two-part checkpoint, and a checksum file."""
    url = f"s3://{BUCKET}/esc/{uuid.uuid4().hex[:8]}"
    opts = s3srv.storage_options()
    write_deltalake(url, _rows(0), partition_by=["label"], storage_options=opts)
    write_deltalake(url, _rows(1), partition_by=["label"], storage_options=opts, mode="append")
    DeltaTable(url, storage_options=opts).create_checkpoint()
    write_deltalake(url, _rows(2), partition_by=["label"], storage_options=opts, mode="append")
    DeltaTable(url, storage_options=opts).delete(f"note = '{SECRET_NOTE}'")
    write_deltalake(url, _rows(4), partition_by=["label"], storage_options=opts, mode="append")
    DeltaTable(url, storage_options=opts).create_checkpoint()
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/"
    _split_checkpoint(backend, prefix, 4)
    crc = {"tableSizeBytes": 1, "numFiles": 25, "label": SECRET_LABEL}
    backend.put_object(
        Bucket=BUCKET, Key=f"{prefix}_delta_log/00000000000000000004.crc", Body=json.dumps(crc)
    )
    return url


@pytest.fixture(scope="module")
def esc_view(s3srv: S3Endpoint, esc_table: str) -> Any:
    cfg = base_config(
        s3srv,
        {"esc": esc_table},
        allowedPartitions={"esc": [{"label": ALLOWED}]},
        anonymousUser="alice",
    )
    v = ThreadedView(validate(cfg)).start()
    yield v
    v.stop()


def _listing(s3: Any, prefix: str) -> dict[str, dict[str, Any]]:
    out, kw = {}, {"Prefix": prefix}
    while True:
        r = s3.list_objects_v2(Bucket="datalake", **kw)
        out.update({o["Key"]: o for o in r.get("Contents", [])})
        if not r["IsTruncated"]:
            return out
        kw["ContinuationToken"] = r["NextContinuationToken"]


def _text_of(key: str, body: bytes) -> str:
    """Everything a reader could get out of a log entry, as text (parquet decoded too)."""
    if key.endswith(".parquet"):
        return json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str)
    return body.decode("utf-8", errors="replace")


def test_a_scan_of_the_readable_log_finds_no_trace_of_denied_partitions(
    esc_view: ThreadedView, backend: Any, esc_table: str
) -> None:
    s3 = client(esc_view.endpoint)
    listed = _listing(s3, "esc/_delta_log/")
    names = {k.rsplit("/", 1)[-1] for k in listed}
    assert "00000000000000000004.checkpoint.0000000001.0000000002.parquet" in names
    assert "00000000000000000001.checkpoint.parquet" in names and "_last_checkpoint" in names
    assert not any(n.endswith(".crc") for n in names)  # checksum files are hidden
    prefix = esc_table.removeprefix(f"s3://{BUCKET}/") + "/"
    stored = backend.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "_delta_log/")["Contents"]
    guesses = {"esc/" + o["Key"][len(prefix) :] for o in stored}  # every stored entry's name
    stored_text = "".join(
        _text_of(o["Key"], backend.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
        for o in stored
    )
    assert all(needle in stored_text for needle in NEEDLES)  # what passthrough would reveal
    for key in sorted(set(listed) | guesses):
        try:
            body = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
        except s3.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied"), key
            assert key.endswith(".crc"), key
            continue
        text = _text_of(key, body)
        for needle in NEEDLES:
            assert needle not in text, (key, needle)
    # the allowed partitions' values, escaped or not, are there
    commit0 = s3.get_object(Bucket="datalake", Key="esc/_delta_log/00000000000000000000.json")
    values = {
        json.loads(line)["add"]["partitionValues"]["label"]
        for line in commit0["Body"].read().splitlines()
        if b'"add"' in line
    }
    assert values == set(ALLOWED)


def test_commit_info_keeps_no_predicate_or_metrics(esc_view: ThreadedView) -> None:
    s3 = client(esc_view.endpoint)
    body = s3.get_object(Bucket="datalake", Key="esc/_delta_log/00000000000000000003.json")
    infos = [
        json.loads(x)["commitInfo"] for x in body["Body"].read().splitlines() if b"commitI" in x
    ]
    assert infos and infos[0]["operation"] == "DELETE"
    assert "predicate" not in infos[0].get("operationParameters", {})
    assert "operationMetrics" not in infos[0]


def test_sizes_and_etags_agree_across_list_head_and_get(esc_view: ThreadedView) -> None:
    s3 = client(esc_view.endpoint)
    for key, entry in _listing(s3, "esc/_delta_log/").items():
        head = s3.head_object(Bucket="datalake", Key=key)
        got = s3.get_object(Bucket="datalake", Key=key)
        body = got["Body"].read()
        assert head["ContentLength"] == entry["Size"] == len(body), key
        assert head["ETag"] == entry["ETag"] == got["ETag"], key


def test_range_on_a_rewritten_checkpoint(esc_view: ThreadedView) -> None:
    s3 = client(esc_view.endpoint)
    key = "esc/_delta_log/00000000000000000004.checkpoint.0000000002.0000000002.parquet"
    whole = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
    for spec, want in (
        ("bytes=0-3", whole[:4]),
        ("bytes=-8", whole[-8:]),
        ("bytes=10-", whole[10:]),
    ):
        r = s3.get_object(Bucket="datalake", Key=key, Range=spec)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["Body"].read() == want and r["ContentRange"].endswith(f"/{len(whole)}")
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.get_object(Bucket="datalake", Key=key, Range=f"bytes={len(whole)}-")
    assert e.value.response["Error"]["Code"] == "InvalidRange"


def test_last_checkpoint_describes_the_rewritten_checkpoint(esc_view: ThreadedView) -> None:
    s3 = client(esc_view.endpoint)
    last = json.loads(
        s3.get_object(Bucket="datalake", Key="esc/_delta_log/_last_checkpoint")["Body"].read()
    )
    assert last["version"] == 4 and last["parts"] == 2
    rows, size = 0, 0
    for i in (1, 2):
        key = f"esc/_delta_log/00000000000000000004.checkpoint.{i:010d}.0000000002.parquet"
        body = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
        rows += pq.read_metadata(io.BytesIO(body)).num_rows
        size += len(body)
    assert last["size"] == rows and last["sizeInBytes"] == size


def test_full_reads_over_both_checkpoint_kinds_return_the_allowed_rows(
    esc_view: ThreadedView,
) -> None:
    """Rows are [amount, label, note]: v4 is read from the two-part checkpoint, v2 from
    deltalake's single-file checkpoint of v1 and one commit."""
    latest = read_through(esc_view.endpoint, "table", "esc")
    assert "rows" in latest, latest
    assert sorted({r[1] for r in latest["rows"]}) == sorted(ALLOWED)
    assert sorted(r[0] for r in latest["rows"]) == sorted(
        n * 10 + i for n in (0, 1, 2, 4) for i in range(4)
    )
    v2 = read_through(esc_view.endpoint, "table", "esc@2")
    assert sorted(r[0] for r in v2["rows"]) == sorted(
        n * 10 + i for n in range(3) for i in range(4)
    )


def test_one_build_per_rule_set_and_the_stored_log_for_whole_table_callers(
    make_view: Any, esc_table: str, backend: Any
) -> None:
    v = make_view(
        tables={"esc": esc_table},
        allowedPartitions={"esc": [{"label": ALLOWED}]},
    )
    logs = _app_view(v).logs
    key = "esc/_delta_log/00000000000000000002.json"
    a = client(v.endpoint, ALICE).get_object(Bucket="datalake", Key=key)["Body"].read()
    built = logs.builds
    c = client(v.endpoint, CAROL).get_object(Bucket="datalake", Key=key)["Body"].read()
    assert a == c and logs.builds == built == 1  # carol shares alice's rule set: no rebuild
    whole = make_view(tables={"esc": esc_table}, allowedPartitions={"esc": [{}]})
    s3 = client(whole.endpoint)
    prefix = esc_table.removeprefix(f"s3://{BUCKET}/") + "/"
    stored = {
        "esc/" + o["Key"][len(prefix) :]: o
        for o in backend.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "_delta_log/")["Contents"]
    }
    seen = _listing(s3, "esc/_delta_log/")
    assert {k: (o["Size"], o["ETag"]) for k, o in seen.items()} == {
        k: (o["Size"], o["ETag"]) for k, o in stored.items()
    }
    for k in stored:
        assert (
            s3.get_object(Bucket="datalake", Key=k)["Body"].read()
            == backend.get_object(Bucket=BUCKET, Key=prefix + k[len("esc/") :])["Body"].read()
        )
    assert _app_view(whole).logs.builds == 0


def _app_view(v: ThreadedView) -> Any:
    return v._runners[0].app[VIEW]
