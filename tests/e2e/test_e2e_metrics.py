"""The internal listener: Prometheus ``/metrics`` and a ``/health`` that names what is down."""

from __future__ import annotations

import re
import shutil
import tomllib
import urllib.request

import pytest
from e2e_support import StartDaemon, http, new_vfid

pytestmark = pytest.mark.e2e


def internal_url(d: object) -> str:
    cfg = tomllib.loads(d.config_path.read_text())  # type: ignore[attr-defined]
    addr = cfg["api"]["manager"]["internal-addr"]
    return f"http://{addr['host']}:{addr['port']}"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def value(text: str, pattern: str) -> float:
    m = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
    assert m, f"{pattern} not in metrics"
    return float(m.group(1))


def test_metrics_count_requests_bytes_and_volumes(start_daemon_factory: StartDaemon) -> None:
    d = start_daemon_factory()
    base = internal_url(d)
    vfid = new_vfid()
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 204
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 409
    token = d.manager(
        "POST",
        "/folder/file/upload",
        {"volume": "vol1", "vfid": vfid, "relpath": "m.bin", "size": 5000},
    ).json()["token"]
    req = urllib.request.Request(
        f"{d.client_url}/upload?token={token}", data=b"m" * 5000, method="PUT"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    token = d.manager(
        "POST", "/folder/file/download", {"volume": "vol1", "vfid": vfid, "relpath": "m.bin"}
    ).json()["token"]
    assert http("GET", f"{d.client_url}/download?token={token}").body == b"m" * 5000

    text = scrape(base)
    created = (
        r'backendai_api_request_count_total\{endpoint="/folder/create",error_detail="",'
        r'method="POST",operation="create",status_code="204"\}'
    )
    assert value(text, created) == 1
    conflict = (
        r'backendai_api_request_count_total\{endpoint="/folder/create",'
        r'error_detail="vfolder-exists",method="POST",operation="create",status_code="409"\}'
    )
    assert value(text, conflict) == 1
    assert "backendai_api_request_duration_sec_bucket" in text
    assert value(text, r'storage_proxy_upload_bytes_total\{volume="vol1"\}') == 5000
    assert value(text, r'storage_proxy_download_bytes_total\{api="client"\}') == 5000
    assert value(text, r'storage_proxy_volume_capacity_bytes\{volume="vol1"\}') > 0


def test_health_names_the_dependency_that_is_down(
    start_daemon_factory: StartDaemon, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    d = start_daemon_factory()
    base = internal_url(d)
    ok = http("GET", base + "/health")
    assert ok.status == 200 and ok.json()["status"] == "ok"
    checks = ok.json()["connectivity"]["connectivity_checks"]
    assert {(c["service_group"], c["component_id"]) for c in checks} == {
        ("metadata", "store"),
        ("volume", "vol1"),
    }
    cfg = tomllib.loads(d.config_path.read_text())  # type: ignore[union-attr]
    shutil.rmtree(cfg["volume"]["vol1"]["path"])  # the volume's storage goes away
    bad = http("GET", base + "/readyz")  # readiness gates on it; /health informs
    assert bad.status == 503
    assert bad.json()["down"] == ["volume:vol1"]
    state = {
        c["service_group"]: c["is_healthy"]
        for c in bad.json()["connectivity"]["connectivity_checks"]
    }
    assert state == {"metadata": True, "volume": False}
    degraded = http("GET", base + "/health")
    assert degraded.status == 200 and degraded.json()["status"] == "degraded"
    assert http("GET", base + "/livez").status == 200
