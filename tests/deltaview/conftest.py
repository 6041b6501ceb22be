"""Real parts for the Delta view tests: the session's S3 server (a real Ceph RGW from
``tests/s3_server.py``, or the S3 named by ``STORAGE_PROXY_TEST_S3_*``), a bucket of this
module's own, Delta tables written to it with deltalake, and the view listening on 127.0.0.1 in a
thread of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pyarrow as pa
import pytest
from botocore.config import Config
from deltalake import write_deltalake
from s3_server import S3Endpoint, s3_endpoint

from storage_proxy.deltaview.config import validate
from storage_proxy.deltaview.testing import ThreadedView

#: This session's bucket (created on the S3 server when first needed): a shared server is never
#: cleared, so the name is new each session.
BUCKET = f"lake-{uuid.uuid4().hex[:16]}"
ALICE = ("AKIDALICE0001", "alice-secret-key", "alice")  # static: sales region=eu
CAROL = ("AKIDCAROL0001", "carol-secret-key", "carol")  # static too; same static rules


@pytest.fixture(scope="session")
def s3srv() -> S3Endpoint:
    """The session's real S3 server (started once, stopped when the session ends)."""
    return s3_endpoint()


@pytest.fixture(scope="session")
def backend(s3srv: S3Endpoint) -> Any:
    s3 = s3srv.client()
    s3.create_bucket(Bucket=BUCKET)
    return s3


def sales_rows(n: int = 0) -> pa.Table:
    return pa.table(
        {
            "region": ["eu", "eu", "us", "asia", "eu"],
            "year": ["2023", "2024", "2024", "2024", "2024"],
            "amount": [1 + n, 2 + n, 3 + n, 4 + n, 5 + n],
        }
    )


@pytest.fixture(scope="session")
def tables(s3srv: S3Endpoint, backend: Any) -> dict[str, str]:
    """alias → s3 URL of the shared, never-modified tables."""
    opts = s3srv.storage_options()
    sales = f"s3://{BUCKET}/warehouse/sales"
    write_deltalake(sales, sales_rows(), partition_by=["region", "year"], storage_options=opts)
    write_deltalake(
        sales, sales_rows(100), partition_by=["region", "year"], storage_options=opts, mode="append"
    )
    events = f"s3://{BUCKET}/warehouse/events"
    write_deltalake(events, pa.table({"id": [1, 2, 3]}), storage_options=opts)
    secret = f"s3://{BUCKET}/warehouse/secret"
    write_deltalake(secret, pa.table({"id": [1]}), storage_options=opts)
    return {"sales": sales, "events": events, "secret": secret}


def base_config(srv: S3Endpoint, tables: dict[str, str], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "port": 0,
        "metricsPort": 0,
        "tableMapping": dict(tables),
        "allowedPartitions": {"sales": [{"region": "eu"}], "events": [{}]},
        "credentials": [
            {"accessKeyId": a, "secretAccessKey": s, "user": u} for a, s, u in (ALICE, CAROL)
        ],
        "logCheckInterval": 0.2,
        "s3": {
            "endpoint": srv.url,
            "region": srv.region,
            "accessKeyId": srv.access_key,
            "secretAccessKey": srv.secret_key,
        },
    }
    cfg.update(extra)
    return cfg


def client(endpoint: str, cred: tuple[str, str, str] = ALICE, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=cred[0],
        aws_secret_access_key=cred[1],
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
            **config,
        ),
    )


@pytest.fixture
def make_view(s3srv: S3Endpoint, tables: dict[str, str]) -> Iterator[Callable[..., ThreadedView]]:
    started: list[ThreadedView] = []

    def make(**extra: Any) -> ThreadedView:
        raw = base_config(s3srv, extra.pop("tables", tables), **extra)
        view = ThreadedView(validate(raw)).start()
        started.append(view)
        return view

    yield make
    for v in started:
        v.stop()


@pytest.fixture(scope="module")
def view(s3srv: S3Endpoint, tables: dict[str, str]) -> Iterator[ThreadedView]:
    """The default view, read-only, proxy mode; shared by a test module."""
    v = ThreadedView(validate(base_config(s3srv, tables))).start()
    yield v
    v.stop()


@pytest.fixture
def s3(view: ThreadedView) -> Any:
    return client(view.endpoint)


@pytest.fixture
def fresh_table(s3srv: S3Endpoint, backend: Any) -> str:
    """A table of its own for tests that commit to it."""
    url = f"s3://{BUCKET}/fresh/{uuid.uuid4().hex[:8]}"
    write_deltalake(
        url, sales_rows(), partition_by=["region", "year"], storage_options=s3srv.storage_options()
    )
    return url


def signed(method: str, url: str, cred: tuple[str, str, str] = ALICE, **headers: str) -> Any:
    """A urllib Request signed with SigV4 (header form) for raw-HTTP tests."""
    import urllib.request

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, headers=dict(headers))
    S3SigV4Auth(Credentials(cred[0], cred[1]), "s3", "us-east-1").add_auth(req)
    return urllib.request.Request(url, method=method, headers=dict(req.headers.items()))
