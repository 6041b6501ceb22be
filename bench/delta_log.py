"""The Delta view's filtered log and Delta Sharing, against a real S3 server (Ceph RGW, started
here; or the S3 named by STORAGE_PROXY_TEST_S3_*), with ratios against direct GETs of one run.

- cold first request (``_last_checkpoint``, which builds the caller's checkpoint) to a table of
  10,000 files in 100 partitions with a filtered log: < 1 s
- the filtered checkpoint of a 100,000-file table: built in < 2 s; served warm at >= 0.8x the
  throughput of a direct GET of the stored checkpoint (same client)
- Delta Sharing ``query`` of 10,000 files, warm: < 500 ms

The view runs in its own process (``delta-view --config``). Usage:
python bench/delta_log.py [--files 100000] [--gets 5]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from delta_view import KEY, SECRET, ViewProcess, s3_client, timed
from deltalake import DeltaTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import S3Endpoint, new_bucket, s3_endpoint  # noqa: E402

TOKEN = "bench-sharing-token-" + uuid.uuid4().hex
SCHEMA = json.dumps(
    {
        "type": "struct",
        "fields": [
            {"name": "region", "type": "string", "nullable": True, "metadata": {}},
            {"name": "v", "type": "long", "nullable": True, "metadata": {}},
        ],
    }
)


def write_table(ep: S3Endpoint, bucket: str, name: str, files: int, partitions: int) -> None:
    """A log of ``files`` adds (with statistics) in ``partitions`` partitions, then a
    checkpoint written by deltalake; the data files themselves are not needed."""
    s3 = ep.client()
    head = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": SCHEMA,
                "partitionColumns": ["region"],
                "configuration": {},
                "createdTime": 0,
            }
        },
    ]
    lines = [json.dumps(a) for a in head]
    for i in range(files):
        stats = {"numRecords": 10, "minValues": {"v": i}, "maxValues": {"v": i + 9}}
        add = {
            "path": f"region=p{i % partitions}/f{i:06d}.parquet",
            "partitionValues": {"region": f"p{i % partitions}"},
            "size": 1000,
            "modificationTime": 0,
            "dataChange": True,
            "stats": json.dumps(stats),
        }
        lines.append(json.dumps({"add": add}))
    body = "\n".join(lines).encode()
    s3.put_object(Bucket=bucket, Key=f"{name}/_delta_log/00000000000000000000.json", Body=body)
    DeltaTable(f"s3://{bucket}/{name}", storage_options=ep.storage_options()).create_checkpoint()


def config(ep: S3Endpoint, bucket: str, allowed: dict[str, Any]) -> dict[str, Any]:
    return {
        "port": 0,
        "metricsPort": None,
        "tableMapping": {n: f"s3://{bucket}/{n}" for n in ("wide", "huge")},
        "allowedPartitions": allowed,
        "credentials": [{"accessKeyId": KEY, "secretAccessKey": SECRET, "user": "bench"}],
        "s3": {
            "endpoint": ep.url,
            "region": ep.region,
            "accessKeyId": ep.access_key,
            "secretAccessKey": ep.secret_key,
        },
        "sharing": {
            "enabled": True,
            "shares": {"bench": {"default": ["wide"]}},
            "recipients": [{"token": TOKEN, "user": "bench", "expires": "2099-01-01T00:00:00Z"}],
        },
    }


def read(client: Any, bucket: str, key: str) -> int:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    n = 0
    while chunk := body.read(1 << 20):
        n += len(chunk)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--gets", type=int, default=5)
    args = ap.parse_args()
    ep = s3_endpoint()
    bucket = new_bucket(ep, "bench")
    t0 = time.perf_counter()
    write_table(ep, bucket, "wide", 10_000, 100)
    write_table(ep, bucket, "huge", args.files, 100)
    print(f"(set-up: tables written in {time.perf_counter() - t0:.1f} s)")
    direct = ep.client()
    cp = "_delta_log/00000000000000000000.checkpoint.parquet"
    most = [f"p{i}" for i in range(90)]  # 90 % of the rows: sizes close to the stored one
    # every partition named (no {} rule): the log is filtered, and every row survives it
    allowed = {"wide": [{"region": [f"p{i}" for i in range(100)]}], "huge": [{"region": most}]}
    view = ViewProcess(config(ep, bucket, allowed)).start()
    try:
        via = s3_client(view.endpoint, KEY, SECRET)
        cold = timed(lambda: read(via, "datalake", "wide/_delta_log/_last_checkpoint"))
        print(f"cold first request, 10,000 files / 100 partitions: {cold * 1000:.0f} ms (< 1000)")
        # the table's snapshot loaded (a listing of data files waits for it), the wide table's
        # background load finished too: the build below is timed alone
        via.list_objects_v2(Bucket="datalake", Prefix="huge/region=p0/", MaxKeys=1)
        via.list_objects_v2(Bucket="datalake", Prefix="wide/region=p0/", MaxKeys=1)
        built = timed(lambda: read(via, "datalake", "huge/" + cp))
        print(
            f"filtered checkpoint of {args.files:,} files, first GET (build): {built:.2f} s (< 2)"
        )
        mine = via.get_object(Bucket="datalake", Key="huge/" + cp)["Body"].read()
        rows = pq.read_metadata(io.BytesIO(mine)).num_rows
        stored = read(direct, bucket, "huge/" + cp)
        # the anchor: the same bytes as an object of the S3 server, by the same client
        direct.put_object(Bucket=bucket, Key="huge/same-bytes.parquet", Body=mine)
        td = min(
            timed(lambda: read(direct, bucket, "huge/same-bytes.parquet")) for _ in range(args.gets)
        )
        tv = min(timed(lambda: read(via, "datalake", "huge/" + cp)) for _ in range(args.gets))
        ts = min(timed(lambda: read(direct, bucket, "huge/" + cp)) for _ in range(args.gets))
        print(
            f"caller's checkpoint ({rows:,} actions, {len(mine) / 2**20:.1f} MiB) warm: "
            f"view {tv * 1000:.1f} ms, direct GET of the same bytes {td * 1000:.1f} ms, "
            f"ratio {td / tv:.2f}x (>= 0.8); direct GET of the stored one "
            f"({stored / 2**20:.1f} MiB) {ts * 1000:.1f} ms"
        )
        query = sharing_query(view.endpoint)
        query()  # warm
        tq = min(timed(query) for _ in range(args.gets))
        tc = min(timed(lambda: read(direct, bucket, "wide/" + cp)) for _ in range(args.gets))
        print(
            f"Delta Sharing query, 10,000 files, warm: {tq * 1000:.0f} ms (< 500); "
            f"direct GET of the table's checkpoint {tc * 1000:.0f} ms"
        )
    finally:
        view.stop()


def sharing_query(endpoint: str) -> Any:
    url = endpoint + "/delta-sharing/shares/bench/schemas/default/tables/wide/query"

    def run() -> None:
        req = urllib.request.Request(
            url, data=b"{}", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(req) as r:
            n = len(re.findall(rb'"file"', r.read()))
        if n != 10_000:
            raise SystemExit(f"the query returned {n} files, not 10,000")

    return run


if __name__ == "__main__":
    main()
