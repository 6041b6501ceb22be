"""Real clients through the view on the session's real S3 server: deltalake (delta-rs), polars
and s3fs + pyarrow, in both GET modes, over the filtered log and the passthrough one.

deltalake and polars run in subprocesses: delta-rs may abort the interpreter at exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pyarrow.parquet as pq
import pytest
import s3fs
from conftest import ALICE

from storage_proxy.deltaview.testing import ThreadedView

READER = textwrap.dedent(
    """
    import json, sys
    endpoint, key, secret, how, arg = sys.argv[1:6]
    opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    table, _, at = arg.partition("@")  # how == "table": "alias" or "alias@version"
    url = "s3://datalake/" + (table if how == "table" else "sales")
    try:
        if how == "polars":
            import polars as pl
            df = pl.read_delta(url, storage_options=opts)
            cols = [df.get_column(c).to_list() for c in ("region", "year", "amount")]
        else:
            from deltalake import DeltaTable
            version = int(arg) if how == "version" else int(at) if at else None
            dt = DeltaTable(url, storage_options=opts, version=version)
            filters = [("region", "=", arg)] if how == "filter" else None
            t = dt.to_pyarrow_table(filters=filters)
            names = ("region", "year", "amount") if how != "table" else sorted(t.column_names)
            cols = [t.column(c).to_pylist() for c in names]
        print(json.dumps({"rows": sorted(list(r) for r in zip(*cols))}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
    """
)


def read_through(
    endpoint: str, how: str, arg: str = "", cred: tuple[str, str, str] = ALICE
) -> dict[str, Any]:
    """Run the read in a subprocess; an abort at exit is tolerated here only, and the result
    line must have been printed before it."""
    p = subprocess.run(
        [sys.executable, "-c", READER, endpoint, cred[0], cred[1], how, arg],
        capture_output=True,
        text=True,
        timeout=180,
    )
    # 134 through a shell, -SIGABRT (-6) when run directly: "terminate called without an active
    # exception" from delta-rs at interpreter exit
    assert p.returncode in (0, 134, -6), p.stderr
    line = p.stdout.strip().splitlines()[-1]
    return dict(json.loads(line))


EU_V0 = [["eu", "2023", 1], ["eu", "2024", 2], ["eu", "2024", 5]]
EU_ROWS = sorted(EU_V0 + [["eu", "2023", 101], ["eu", "2024", 102], ["eu", "2024", 105]])


@pytest.mark.parametrize("mode", ["proxy", "presignedUrl"])
def test_deltalake_full_read_returns_exactly_the_allowed_rows(make_view: Any, mode: str) -> None:
    """No filter needed: the caller's log names only its files (proxy and presigned, on RGW)."""
    v = make_view(getMode=mode)
    assert read_through(v.endpoint, "full") == {"rows": EU_ROWS}
    assert read_through(v.endpoint, "filter", "eu") == {"rows": EU_ROWS}
    assert read_through(v.endpoint, "filter", "us") == {"rows": []}
    redirected = v.metrics.redirected._value.get()
    assert (redirected > 0) == (mode == "presignedUrl")


@pytest.mark.parametrize("mode", ["proxy", "presignedUrl"])
def test_polars_read_delta_returns_exactly_the_allowed_rows(make_view: Any, mode: str) -> None:
    v = make_view(getMode=mode)
    assert read_through(v.endpoint, "polars") == {"rows": EU_ROWS}


def test_time_travel_returns_the_allowed_rows_of_that_version(make_view: Any) -> None:
    v = make_view()
    assert read_through(v.endpoint, "version", "0") == {"rows": EU_V0}
    assert read_through(v.endpoint, "version", "1") == {"rows": EU_ROWS}


def test_passthrough_log_makes_a_full_read_fail_and_a_filtered_one_work(make_view: Any) -> None:
    """``logMode: passthrough`` keeps the stored log: readers must bring their own filter."""
    v = make_view(logMode="passthrough")
    full = read_through(v.endpoint, "full")
    assert "error" in full and ("AccessDenied" in full["error"] or "403" in full["error"])
    assert read_through(v.endpoint, "filter", "eu") == {"rows": EU_ROWS}


def test_a_whole_table_rule_reads_everything(make_view: Any) -> None:
    v = make_view(allowedPartitions={"sales": [{}]})
    rows = read_through(v.endpoint, "full")["rows"]
    assert len(rows) == 10 and {r[0] for r in rows} == {"eu", "us", "asia"}


def test_s3fs_and_pyarrow_read_a_parquet_file(view: ThreadedView) -> None:
    fs = s3fs.S3FileSystem(
        key=ALICE[0],
        secret=ALICE[1],
        client_kwargs={"endpoint_url": view.endpoint, "region_name": "us-east-1"},
        use_listings_cache=False,
    )
    files = [f for f in fs.find("datalake/sales/region=eu") if f.endswith(".parquet")]
    assert len(files) == 4
    table = pq.read_table(files[0], filesystem=fs)
    assert table.num_rows >= 1 and "amount" in table.column_names
    assert [p.rsplit("/", 1)[-1] for p in fs.ls("datalake/sales/")] == ["_delta_log", "region=eu"]
