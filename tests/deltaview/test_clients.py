"""Real clients through the view: deltalake (delta-rs) in both GET modes, s3fs + pyarrow."""

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
    from deltalake import DeltaTable
    endpoint, key, secret, region = sys.argv[1:5]
    opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    try:
        dt = DeltaTable("s3://datalake/sales", storage_options=opts)
        t = dt.to_pyarrow_table(filters=[("region", "=", region)])
        rows = sorted(zip(t.column("region").to_pylist(), t.column("year").to_pylist(),
                          t.column("amount").to_pylist()))
        print(json.dumps({"rows": rows}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
    """
)


def read_through(view: ThreadedView, region: str) -> dict[str, Any]:
    """Run the deltalake read in a subprocess; an abort at exit is tolerated here only, and the
    result line must have been printed before it."""
    p = subprocess.run(
        [sys.executable, "-c", READER, view.endpoint, ALICE[0], ALICE[1], region],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # 134 through a shell, -SIGABRT (-6) when run directly: "terminate called without an active
    # exception" from delta-rs at interpreter exit
    assert p.returncode in (0, 134, -6), p.stderr
    line = p.stdout.strip().splitlines()[-1]
    return dict(json.loads(line))


EU_ROWS = sorted(
    [["eu", "2023", 1], ["eu", "2024", 2], ["eu", "2024", 5]]
    + [["eu", "2023", 101], ["eu", "2024", 102], ["eu", "2024", 105]]
)


@pytest.mark.parametrize("mode", ["proxy", "presignedUrl"])
def test_deltalake_reads_allowed_partition_and_fails_on_denied(make_view: Any, mode: str) -> None:
    v = make_view(getMode=mode)
    allowed = read_through(v, "eu")
    assert allowed == {"rows": EU_ROWS}
    denied = read_through(v, "us")
    assert "error" in denied and ("AccessDenied" in denied["error"] or "403" in denied["error"])
    redirected = v.metrics.redirected._value.get()
    assert (redirected > 0) == (mode == "presignedUrl")


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
