"""Keys are canonical before they are authorized: every dot-segment, empty-segment and
backslash form, raw and percent-encoded, is refused with 403 AccessDenied — in proxy and
presigned mode, never a redirect. And a client hanging up mid-download is counted quietly."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import BUCKET, client, signed

from storage_proxy.deltaview.keys import canonical_path
from storage_proxy.deltaview.testing import ThreadedView


def _denied_key(view: ThreadedView) -> str:
    """A real data file of the denied partition region=us (read through a whole-table rule)."""
    s3 = client(view.endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="datalake", Prefix="sales/")["Contents"]]
    return next(k for k in keys if "region=us/" in k)


def _forms(us_key: str) -> list[str]:
    """``/datalake/...`` paths that name the denied file through dot segments and friends."""
    table, rest = us_key.split("/", 1)  # sales, region=us/year=2024/part-....parquet
    enc = rest.replace("=", "%3D")
    return [
        f"/datalake/{table}/_delta_log/../{rest}",
        f"/datalake/{table}/_delta_log/%2E%2E/{rest}",
        f"/datalake/{table}/_delta_log/%2e%2e/{enc}",
        f"/datalake/{table}/_delta_log/..%2F{rest}",
        f"/datalake/{table}/_delta_log%2F..%2F{enc}",
        f"/datalake/{table}/_delta_log/.%2E/{rest}",
        f"/datalake/{table}/region=eu/../{rest}",
        f"/datalake/{table}/./{rest}",
        f"/datalake/{table}/%2E/{rest}",
        f"/datalake/{table}//{rest}",
        f"/datalake/{table}/_delta_log/..%5C{rest}",
        f"/datalake/{table}/_delta_log\\..\\{rest}",
        f"/datalake/{table}/_delta_log/%252E%252E/{rest}",  # decoded once: a literal %2E%2E
        f"/datalake/./{table}/{rest}",
        f"/datalake/../datalake/{table}/{rest}",
        f"/datalake/{table}/{rest}%00",
    ]


def _raw(endpoint: str, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    netloc = urlsplit(endpoint).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out as given
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


@pytest.mark.parametrize("mode", ["proxy", "presignedUrl"])
def test_every_dot_segment_form_is_refused_never_redirected(make_view: Any, mode: str) -> None:
    whole = make_view(allowedPartitions={"sales": [{}]})
    us_key = _denied_key(whole)
    v = make_view(getMode=mode, anonymousUser="alice")
    for path in _forms(us_key):
        for method in ("GET", "HEAD"):
            status, headers, body = _raw(v.endpoint, method, path)
            assert status == 403, (method, path, status)
            assert "Location" not in headers, path
            if method == "GET":
                assert b"<Code>AccessDenied</Code>" in body, path
    # signed the way SDKs sign: still refused
    for path in _forms(us_key)[:4]:
        req = signed("GET", v.endpoint + path)
        status, headers, body = _raw(v.endpoint, "GET", path, dict(req.header_items()))
        assert status == 403 and "Location" not in headers, path
        assert b"<Code>AccessDenied</Code>" in body, (path, body)
    # the same file by its canonical name, encoded or not: the gate's answer, not the key's
    assert _raw(v.endpoint, "GET", "/datalake/" + us_key)[0] == 403
    listed = client(v.endpoint).list_objects_v2(Bucket="datalake", Prefix="sales/region=eu/")
    eu_key = listed["Contents"][0]["Key"]
    for path in ("/datalake/" + eu_key, "/datalake/" + eu_key.replace("=", "%3D")):
        assert _raw(v.endpoint, "GET", path)[0] == (200 if mode == "proxy" else 307)


@pytest.mark.parametrize(
    "path",
    [
        "/datalake/a/./b",
        "/datalake/a/../b",
        "/datalake/a//b",
        "/datalake/a\\b",
        "/../datalake/x",
        "/datalake/a/%2e%2E/b",
        "/datalake/a/b%2F..%2Fc",
        "/datalake/a/%C3",
    ],
)
def test_canonical_path_refuses(path: str) -> None:
    from storage_proxy.deltaview.errors import S3Error

    with pytest.raises(S3Error) as e:
        canonical_path(path)
    assert e.value.error.code == "AccessDenied"


def test_canonical_path_decodes_once() -> None:
    assert canonical_path("/datalake/t/a%20b/k%3Dv/%C3%BC/%25") == "/datalake/t/a b/k=v/ü/%"
    assert canonical_path("/datalake/t/%252E%252E/x") == "/datalake/t/%2E%2E/x"
    assert canonical_path("/datalake/") == "/datalake/" and canonical_path("/") == "/"


def test_a_client_hanging_up_mid_download_is_counted_not_logged(
    make_view: Any, backend: Any, fresh_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = fresh_table.removeprefix(f"s3://{BUCKET}/") + "/"
    rel = "region=eu/year=2024/big.bin"
    backend.put_object(Bucket=BUCKET, Key=prefix + rel, Body=os.urandom(32 << 20))
    add = {
        "add": {
            "path": rel,
            "partitionValues": {"region": "eu", "year": "2024"},
            "size": 32 << 20,
            "modificationTime": 0,
            "dataChange": True,
        }
    }
    backend.put_object(
        Bucket=BUCKET, Key=prefix + "_delta_log/00000000000000000001.json", Body=json.dumps(add)
    )
    v = make_view(
        tables={"t": fresh_table},
        anonymousUser="alice",
        allowedPartitions={"t": [{"region": "eu"}]},
    )
    caplog.set_level(logging.INFO)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", v.port)) as sock:
            sock.sendall(f"GET /datalake/t/{rel} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = b""
            while len(got) < 256 << 10:
                got += sock.recv(65536)
            assert got.startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 10
    while v.metrics.client_gone._value.get() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert v.metrics.client_gone._value.get() == 3
    text = caplog.text
    assert "Traceback" not in text and "Cannot write to closing transport" not in text
    assert "Error handling request" not in text and "unhandled error" not in text
