"""The routes storage-proxy 26.9.6 has that 23.09 lacked, in the default (26.09) dialect: their
wire shapes, their refusals (no manager secret, paths out of the vfolder, foreign tokens), and
the OpenAPI description of every answer (the ``daemon`` fixture checks each against it)."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import jwt
import pytest
from api_fixtures import TOKEN_SECRET, Daemon

from storage_proxy.api.manager import AUTH_HEADER

QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"
OTHER = f"{QSID}/aabbccdd000040008000000000000002"
PROBS = "https://api.backend.ai/probs/"


async def make_tree(daemon: Daemon, vfid: str = VFID) -> Path:
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=vfid)
    assert status == 204
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=vfid)
    root = Path(mount["path"])
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "hello.txt").write_bytes(b"hello\n")
    (root / "a" / "b" / "deep.bin").write_bytes(bytes(range(256)))
    (root / "top.txt").write_bytes(b"top\n")
    return root


# -- no manager secret: every new route refuses ---------------------------------------------------

NEW_ROUTES = [
    ("GET", "/volume/performance-metric", {"volume": "vol1"}),
    ("GET", "/volume/quota", {"volume": "vol1", "vfid": VFID}),
    ("PATCH", "/volume/quota", {"volume": "vol1", "vfid": VFID, "size_bytes": 1}),
    ("GET", "/folder/metadata", {"volume": "vol1", "vfid": VFID}),
    ("POST", "/folder/metadata", {"volume": "vol1", "vfid": VFID, "payload": "x"}),
    ("POST", "/folder/file/fetch", {"volume": "vol1", "vfid": VFID, "relpath": "top.txt"}),
    ("POST", "/folder/file/delete-async", {"volume": "vol1", "vfid": VFID, "relpaths": ["a"]}),
    (
        "POST",
        "/folder/file/archive-download-token",
        {"volume": "vol1", "virtual_folder_id": VFID, "files": ["a"]},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), NEW_ROUTES)
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_new_routes_refuse_without_the_manager_secret(
    daemon: Daemon, method: str, path: str, body: dict[str, Any], token: str | None
) -> None:
    root = await make_tree(daemon)
    headers = {AUTH_HEADER: token or ""}
    resp = await daemon.manager.request(method, path, json=body, headers=headers)
    assert resp.status == 403
    problem = await resp.json()
    assert problem["type"] == f"{PROBS}storage/forbidden"
    assert problem["title"] == f"Forbidden ({'invalid' if token else 'missing'} auth token)"
    assert (root / "a" / "hello.txt").exists()  # the delete did not happen


# -- health -----------------------------------------------------------------------------------


async def test_livez_and_readyz_answer_503_when_a_gating_dependency_fails(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = daemon.ctx.services.vfolders.volumes.get("vol1")

    async def broken() -> Any:
        raise OSError("the volume is gone")

    monkeypatch.setattr(volume, "get_fs_usage", broken)
    ready = await daemon.manager.get("/readyz", headers={AUTH_HEADER: ""})
    assert ready.status == 503
    body = await ready.json()
    assert body["status"] == "error" and body["connectivity"]["overall_healthy"] is False
    failed = [c for c in body["connectivity"]["connectivity_checks"] if not c["is_healthy"]]
    assert [(c["service_group"], c["component_id"]) for c in failed] == [("volume", "vol1")]
    assert failed[0]["error_message"]
    # liveness does not gate on a volume; /health informs and stays 200
    assert (await daemon.manager.get("/livez")).status == 200
    health = await daemon.manager.get("/health")
    assert health.status == 200 and (await health.json())["status"] == "degraded"


# -- volumes and metadata ------------------------------------------------------------------------


async def test_performance_metric_of_a_vfs_volume_is_its_disk_s(daemon: Daemon) -> None:
    """A real reading: the counters of the block device below the volume, over the sampling
    window, while this test writes (and syncs) to that device."""
    volume = daemon.ctx.services.vfolders.volumes.get("vol1")
    stop = asyncio.Event()

    def write_and_sync() -> None:
        with open(volume.mount_path / "perf.bin", "wb") as f:
            while not stop.is_set():
                f.write(os.urandom(1 << 16))
                f.flush()
                os.fsync(f.fileno())

    writer = asyncio.create_task(asyncio.to_thread(write_and_sync))
    try:
        status, body = await daemon.call("GET", "/volume/performance-metric", volume="vol1")
    finally:
        stop.set()
        await writer
    assert status == 200, body
    metric = body["metric"]
    assert set(metric) == {
        "iops_read",
        "iops_write",
        "io_bytes_read",
        "io_bytes_write",
        "io_usec_read",
        "io_usec_write",
    }
    assert all(v >= 0 for v in metric.values())
    assert metric["iops_write"] > 0 and metric["io_bytes_write"] >= 1 << 16
    assert isinstance(body["observed_at"], str)


async def test_performance_metric_refusals(daemon: Daemon, monkeypatch: Any) -> None:
    status, body = await daemon.call("GET", "/volume/performance-metric", volume="nope")
    assert (status, body["type"]) == (400, f"{PROBS}storage/volume/invalid")
    status, body = await daemon.call("GET", "/volume/performance-metric")
    assert (status, body["data"]) == (400, {"volume": "is required"})
    # a backend that cannot tell (a network file system, an appliance): as Backend.AI answers
    volume = daemon.ctx.services.vfolders.volumes.get("vol1")
    monkeypatch.setattr(type(volume), "block_device_metrics", False)
    status, body = await daemon.call("GET", "/volume/performance-metric", volume="vol1")
    assert (status, body["type"]) == (400, f"{PROBS}storage/unsupported-operation")


async def test_volume_quota_is_a_deprecated_400_without_a_body(daemon: Daemon) -> None:
    for method, extra in (("GET", {}), ("PATCH", {"size_bytes": 10})):
        resp = await daemon.manager.request(
            method, "/volume/quota", json={"volume": "vol1", "vfid": VFID, **extra}
        )
        assert resp.status == 400 and await resp.read() == b""
        assert "deprecated" in (resp.reason or "")
    status, body = await daemon.call("PATCH", "/volume/quota", volume="vol1", vfid=VFID)
    assert (status, body["data"]) == (400, {"size_bytes": "is required"})


async def test_folder_metadata(daemon: Daemon) -> None:
    await make_tree(daemon)
    assert await daemon.call("GET", "/folder/metadata", volume="vol1", vfid=VFID) == (
        200,
        {"status": "ok"},
    )
    status, body = await daemon.call("GET", "/folder/metadata", volume="vol1", vfid=OTHER)
    assert (status, body["type"]) == (404, f"{PROBS}storage/vfolder/not-found")
    status, body = await daemon.call(
        "POST", "/folder/metadata", volume="vol1", vfid=VFID, payload="x"
    )
    assert (status, list(body["data"])) == (400, ["payload"])


# -- fetch --------------------------------------------------------------------------------------


async def test_fetch_streams_the_bytes(daemon: Daemon) -> None:
    await make_tree(daemon)
    resp = await daemon.manager.post(
        "/folder/file/fetch", json={"volume": "vol1", "vfid": VFID, "relpath": "a/b/deep.bin"}
    )
    assert resp.status == 200 and resp.content_type == "application/octet-stream"
    assert await resp.read() == bytes(range(256))


async def test_download_sends_every_file_as_octet_stream(daemon: Daemon) -> None:
    """As 26.9.6 does, whichever path sends the file (small ones read whole, ranges, HEAD)."""
    await make_tree(daemon)
    status, body = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath="a/hello.txt"
    )
    assert status == 200, body
    for method, headers in (("GET", {}), ("GET", {"Range": "bytes=0-2"}), ("HEAD", {})):
        resp = await daemon.client.request(
            method, "/download", params={"token": body["token"]}, headers=headers
        )
        assert resp.status in (200, 206), (method, headers)
        assert resp.content_type == "application/octet-stream", (method, headers)


@pytest.mark.parametrize(
    ("relpath", "status", "type_"),
    [
        ("a/nope", 404, "storage/file-not-found"),
        ("a", 400, "storage/invalid-api-params"),
        ("../../etc/passwd", 400, "storage/invalid-api-params"),
        ("/etc/passwd", 400, "storage/invalid-api-params"),
        ("link", 400, None),
    ],
)
async def test_fetch_refuses_what_is_not_a_file_inside(
    daemon: Daemon, relpath: str, status: int, type_: str | None
) -> None:
    root = await make_tree(daemon)
    os.symlink("/etc/passwd", root / "link")
    resp = await daemon.manager.post(
        "/folder/file/fetch", json={"volume": "vol1", "vfid": VFID, "relpath": relpath}
    )
    body = await resp.json()
    assert resp.status == status, body
    if type_ is not None:
        assert body["type"] == PROBS + type_
    assert "root:" not in str(body)


# -- delete-async --------------------------------------------------------------------------------


async def wait_done(daemon: Daemon, task_id: str) -> dict[str, Any]:
    for _ in range(300):
        _, task = await daemon.call("GET", f"/bgtask/{task_id}")
        if task["status"] not in ("pending", "running"):
            return dict(task)
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} did not end")


async def test_delete_async_is_a_202_task(daemon: Daemon) -> None:
    root = await make_tree(daemon)
    status, body = await daemon.call(
        "POST",
        "/folder/file/delete-async",
        volume="vol1",
        vfid=VFID,
        relpaths=["a", "top.txt", "gone"],
        recursive=True,
    )
    assert status == 202 and set(body) == {"bgtask_id"}
    assert (await wait_done(daemon, body["bgtask_id"]))["status"] == "done"
    assert sorted(p.name for p in root.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({"vfid": VFID, "relpaths": ["../x"]}, 400, "storage/invalid-api-params"),
        ({"vfid": VFID, "relpaths": ["/abs"]}, 400, "storage/invalid-api-params"),
        ({"vfid": OTHER, "relpaths": ["a"]}, 404, "storage/vfolder/not-found"),
        ({"vfid": VFID}, 400, "generic-bad-request"),
        ({"vfid": "x", "relpaths": ["a"]}, 400, "generic-bad-request"),
    ],
)
async def test_delete_async_refuses_a_delete_that_cannot_succeed(
    daemon: Daemon, body: dict[str, Any], status: int, type_: str
) -> None:
    root = await make_tree(daemon)
    got, answer = await daemon.call("POST", "/folder/file/delete-async", volume="vol1", **body)
    assert (got, answer["type"]) == (status, PROBS + type_)
    assert (root / "a" / "hello.txt").exists()


async def test_delete_async_without_a_body_is_malformed(daemon: Daemon) -> None:
    resp = await daemon.manager.post("/folder/file/delete-async", data=b"")
    body = await resp.json()
    assert (resp.status, body["type"], body["title"]) == (
        400,
        f"{PROBS}generic-bad-request",
        "Malformed request body.",
    )


# -- archive downloads ----------------------------------------------------------------------------


async def archive_token(daemon: Daemon, files: list[str], **extra: Any) -> str:
    status, body = await daemon.call(
        "POST",
        "/folder/file/archive-download-token",
        volume="vol1",
        virtual_folder_id=VFID,
        files=files,
        **extra,
    )
    assert status == 200 and set(body) == {"token"}, body
    return str(body["token"])


async def test_archive_token_claims_are_backend_ai_s(daemon: Daemon) -> None:
    token = await archive_token(daemon, ["a", "top.txt"], filename="my.zip")
    claims = jwt.decode(token, TOKEN_SECRET, algorithms=["HS256"])
    assert {k: claims[k] for k in ("operation", "volume", "virtual_folder_id", "files")} == {
        "operation": "download",
        "volume": "vol1",
        "virtual_folder_id": VFID,
        "files": ["a", "top.txt"],
    }
    assert claims["filename"] == "my.zip" and claims["exp"] > 0


@pytest.mark.parametrize(
    "body",
    [
        {"files": []},
        {"files": ["a"], "filename": "x/y.zip"},
        {"files": ["a"], "filename": "x" * 256},
        {"files": "a"},
    ],
)
async def test_archive_token_refuses_bad_parameters(daemon: Daemon, body: dict[str, Any]) -> None:
    status, answer = await daemon.call(
        "POST", "/folder/file/archive-download-token", volume="vol1", virtual_folder_id=VFID, **body
    )
    assert (status, answer["type"]) == (400, f"{PROBS}generic-bad-request")


async def test_download_archive_streams_one_zip(daemon: Daemon) -> None:
    await make_tree(daemon)
    token = await archive_token(daemon, ["a/b", "top.txt", "a/hello.txt"], filename="my.zip")
    resp = await daemon.client.get("/download-archive", params={"token": token})
    assert resp.status == 200 and resp.content_type == "application/zip"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert "my.zip" in resp.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["a/b/", "a/b/deep.bin", "a/hello.txt", "top.txt"]
    assert archive.read("a/b/deep.bin") == bytes(range(256))
    default = await daemon.client.get(
        "/download-archive", params={"token": await archive_token(daemon, ["a"])}
    )
    assert "archive.zip" in default.headers["Content-Disposition"]
    await default.read()


async def test_download_archive_missing_path_is_404_text(daemon: Daemon) -> None:
    await make_tree(daemon)
    resp = await daemon.client.get(
        "/download-archive", params={"token": await archive_token(daemon, ["a", "nope"])}
    )
    assert (resp.status, resp.content_type) == (404, "text/plain")
    assert await resp.text() == "404: File not found: nope"


async def test_download_archive_keeps_to_the_vfolder(daemon: Daemon, tmp_path: Path) -> None:
    """The same containment as a single download: no '..', no absolute path, no symlink out."""
    root = await make_tree(daemon)
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_bytes(b"not yours")
    os.symlink(secret, root / "link-dir")
    os.symlink(secret / "secret.txt", root / "link-file")
    for files in (["../../outside"], ["/etc/passwd"], ["link-dir"], ["link-file"]):
        resp = await daemon.client.get(
            "/download-archive", params={"token": await archive_token(daemon, files)}
        )
        body = await resp.read()
        assert resp.status == 400, (files, body)
        assert b"not yours" not in body
    # a directory that holds a link: the link is not followed
    (root / "a" / "esc").symlink_to(secret)
    resp = await daemon.client.get(
        "/download-archive", params={"token": await archive_token(daemon, ["a"])}
    )
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert not any("secret" in n for n in archive.namelist())


async def test_download_archive_refuses_foreign_tokens(daemon: Daemon) -> None:
    await make_tree(daemon)
    forged = jwt.encode(
        {"operation": "download", "volume": "vol1", "virtual_folder_id": VFID, "files": ["a"]},
        "not-the-secret-0123456789abcdef-long-enough",
        algorithm="HS256",
    )
    status, dl = await daemon.call(
        "POST", "/folder/file/download", volume="vol1", vfid=VFID, relpath="top.txt"
    )
    assert status == 200
    for token, type_ in (
        ("garbage", "jwt-decode-error"),
        (forged, "jwt-decode-error"),
        (dl["token"], "jwt-payload-validation-error"),
        (None, "generic-bad-request"),
    ):
        params = {"token": token} if token is not None else {}
        resp = await daemon.client.get("/download-archive", params=params)
        assert resp.status == 400
        assert (await resp.json())["type"] == PROBS + type_


async def test_the_23_09_dialect_answers_as_23_9_10(legacy_daemon: Daemon) -> None:
    resp = await legacy_daemon.manager.get("/volume/quota", json={"volume": "vol1", "vfid": VFID})
    assert resp.status == 400 and await resp.read() == b""
    assert resp.headers["Content-Type"] == "application/octet-stream"  # 23.9.10's aiohttp
    assert "deprecated" in (resp.reason or "")
    resp = await legacy_daemon.client.get("/download-archive", params={"token": "garbage"})
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid-token")
