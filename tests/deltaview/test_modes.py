"""presignedUrl mode (307), proxyPartial, the client-side proxy, and writes with readOnly off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from conftest import ALICE, BUCKET, client, signed

from storage_proxy.deltaview import client_proxy
from storage_proxy.deltaview.testing import free_port


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _eu_key(s3: Any) -> str:
    r = s3.list_objects_v2(Bucket="datalake", Prefix="sales/region=eu/year=2023/")
    return str(r["Contents"][0]["Key"])


def test_presigned_mode_answers_307_with_a_short_lived_url(make_view: Any, backend: Any) -> None:
    """A header-signed request (an SDK) gets a URL signed for the ``x-amz-content-sha256`` it
    re-sends when it follows; RGW checks that header, so a follower without it is refused."""
    v = make_view(getMode="presignedUrl", presignExpiry=30)
    key = _eu_key(client(v.endpoint))
    opener = urllib.request.build_opener(_NoRedirect)
    req = signed("GET", f"{v.endpoint}/datalake/{key}")
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(req)
    assert e.value.code == 307
    location = e.value.headers["Location"]
    assert location.startswith(v.cfg.s3.endpoint or "") and "X-Amz-Expires=30" in location
    direct = backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    sha = req.get_header("X-amz-content-sha256")
    assert sha
    follow = urllib.request.Request(location, headers={"x-amz-content-sha256": sha})
    assert urllib.request.urlopen(follow).read() == direct
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(location)
    assert refused.value.code == 403
    # Range is redirected too unless proxyPartial
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(signed("GET", f"{v.endpoint}/datalake/{key}", Range="bytes=0-3"))
    assert e.value.code == 307


def test_a_presigned_view_url_redirects_to_a_plain_backend_url(
    make_view: Any, backend: Any
) -> None:
    """curl and browsers: a presigned URL of the view, followed with a plain GET (urllib follows
    the 307 itself); the redirect signs ``host`` as a plain presigned URL does."""
    v = make_view(getMode="presignedUrl")
    s3 = client(v.endpoint)
    key = _eu_key(s3)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "datalake", "Key": key})
    direct = backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    with urllib.request.urlopen(url) as r:
        assert r.read() == direct
        assert r.url.startswith(v.cfg.s3.endpoint or "") and "X-Amz-SignedHeaders=host" in r.url


def test_proxy_partial_keeps_ranges_in_proxy_mode(make_view: Any) -> None:
    v = make_view(getMode="presignedUrl", proxyPartial=True)
    s3 = client(v.endpoint)
    r = s3.get_object(Bucket="datalake", Key=_eu_key(s3), Range="bytes=0-3")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206 and r["Body"].read() == b"PAR1"


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, app: web.Application) -> int:
        async def go() -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)
            return port

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    def close(self) -> None:
        async def stop() -> None:
            for r in self.runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop() -> Iterator[_Loop]:
    lp = _Loop()
    yield lp
    lp.close()


def test_client_proxy_follows_307_without_authorization(loop: _Loop) -> None:
    seen: dict[str, str] = {}

    async def target(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(body=b"data", status=206 if "Range" in request.headers else 200)

    target_app = web.Application()
    target_app.router.add_get("/obj", target)
    target_port = loop.serve(target_app)

    async def view(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "AWS4-HMAC-SHA256 secret-bits"
        return web.Response(
            status=307, headers={"Location": f"http://127.0.0.1:{target_port}/obj?sig=1"}
        )

    view_app = web.Application()
    view_app.router.add_get("/datalake/{key:.*}", view)
    view_port = loop.serve(view_app)
    proxy_port = loop.serve(client_proxy.build_app(f"http://127.0.0.1:{view_port}"))
    req = urllib.request.Request(
        f"http://127.0.0.1:{proxy_port}/datalake/t/a.parquet",
        headers={"Authorization": "AWS4-HMAC-SHA256 secret-bits", "Range": "bytes=0-3"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 206 and r.read() == b"data"
    assert "Authorization" not in seen and seen["Range"] == "bytes=0-3"


def test_boto3_through_client_proxy_in_presigned_mode(
    make_view: Any, loop: _Loop, backend: Any
) -> None:
    v = make_view(getMode="presignedUrl")
    port = loop.serve(client_proxy.build_app(v.endpoint))
    s3 = client(f"http://127.0.0.1:{port}")
    key = _eu_key(s3)
    body = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
    assert body == backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    with pytest.raises(ClientError):
        s3.get_object(Bucket="datalake", Key=key.replace("region=eu", "region=us"))


def test_writes_with_read_only_off(make_view: Any, backend: Any) -> None:
    v = make_view(readOnly=False)
    s3 = client(v.endpoint)
    s3.put_object(Bucket="datalake", Key="sales/region=eu/year=2030/new.parquet", Body=b"eu")
    s3.put_object(Bucket="datalake", Key="sales/_delta_log/_tmp_commit.json", Body=b"{}")
    got = backend.get_object(Bucket=BUCKET, Key="warehouse/sales/region=eu/year=2030/new.parquet")
    assert got["Body"].read() == b"eu"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="datalake", Key="sales/region=us/year=2030/new.parquet", Body=b"us")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    listed = backend.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/sales/region=us/year=2030")
    assert listed["KeyCount"] == 0
    s3.delete_object(Bucket="datalake", Key="sales/region=eu/year=2030/new.parquet")
    s3.delete_object(Bucket="datalake", Key="sales/_delta_log/_tmp_commit.json")
    listed = backend.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/sales/region=eu/year=2030")
    assert listed["KeyCount"] == 0


def _aws_cp(endpoint: str, key: str, out: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ALICE[0],
        "AWS_SECRET_ACCESS_KEY": ALICE[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return subprocess.run(
        ["aws", "--endpoint-url", endpoint, "s3", "cp", f"s3://datalake/{key}", out],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_client_mode_table_aws_cli(
    make_view: Any, loop: _Loop, backend: Any, tmp_path: Any
) -> None:
    """The docs' table, AWS CLI row: proxy works, presigned does not (no 307 followed), presigned
    through client-proxy works."""
    proxy = make_view()
    key = _eu_key(client(proxy.endpoint))
    want = backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    out = tmp_path / "got.parquet"
    assert _aws_cp(proxy.endpoint, key, str(out)).returncode == 0 and out.read_bytes() == want
    presigned = make_view(getMode="presignedUrl")
    out.unlink()
    failed = _aws_cp(presigned.endpoint, key, str(out))
    assert failed.returncode != 0 or not out.exists() or out.read_bytes() != want
    port = loop.serve(client_proxy.build_app(presigned.endpoint))
    assert _aws_cp(f"http://127.0.0.1:{port}", key, str(out)).returncode == 0
    assert out.read_bytes() == want


def test_client_mode_table_boto3_does_not_follow_a_307(make_view: Any, backend: Any) -> None:
    v = make_view(getMode="presignedUrl")
    s3 = client(v.endpoint)
    key = _eu_key(s3)
    want = backend.get_object(Bucket=BUCKET, Key="warehouse/" + key)["Body"].read()
    try:
        got = s3.get_object(Bucket="datalake", Key=key)["Body"].read()
    except ClientError:
        got = None
    assert got != want


def test_client_mode_table_deltalake_through_client_proxy(make_view: Any, loop: _Loop) -> None:
    from test_clients import EU_ROWS, read_through

    v = make_view(getMode="presignedUrl")
    port = loop.serve(client_proxy.build_app(v.endpoint))
    assert read_through(f"http://127.0.0.1:{port}", "full") == {"rows": EU_ROWS}
