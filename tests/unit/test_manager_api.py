"""The manager API in-process: Backend.AI routes, auth, JSON shapes and problem+json errors, in
the default dialect (26.09) and, where they differ, the 23.09 one."""

from __future__ import annotations

import asyncio
import errno
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from helpers import new_qsid, new_vfid
from storage_proxy.api.dialect import PROBS
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.config import validate
from storage_proxy.context import RootContext, build_root_context

SECRET = "test-manager-secret"
QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"


async def _root_ctx(tmp_path: Path, compat: str) -> RootContext:
    cfg = validate(
        {
            "storage-proxy": {"data-dir": str(tmp_path / "data"), "scan-workers": 0},
            "api": {"manager": {"secret": SECRET, "compat": compat}},
            "volume": {"vol1": {"backend": "vfs", "path": str(tmp_path / "vol1")}},
        }
    )
    return await build_root_context(cfg)


@pytest.fixture
async def root_ctx(tmp_path: Path) -> AsyncIterator[RootContext]:
    ctx = await _root_ctx(tmp_path, "26.09")
    yield ctx
    await ctx.close()


@pytest.fixture
async def legacy_ctx(tmp_path: Path) -> AsyncIterator[RootContext]:
    ctx = await _root_ctx(tmp_path, "23.09")
    yield ctx
    await ctx.close()


@pytest.fixture
async def client(aiohttp_client: Any, root_ctx: RootContext) -> TestClient:
    c: TestClient = await aiohttp_client(create_manager_app(root_ctx.services))
    c.session.headers[AUTH_HEADER] = SECRET
    return c


@pytest.fixture
async def legacy_client(aiohttp_client: Any, legacy_ctx: RootContext) -> TestClient:
    """The manager API in the 23.09 dialect (``[api.manager] compat = "23.09"``)."""
    c: TestClient = await aiohttp_client(create_manager_app(legacy_ctx.services))
    c.session.headers[AUTH_HEADER] = SECRET
    return c


async def wait_task(client: TestClient, answer: Any) -> dict[str, Any]:
    """Follow a started task (``{"bgtask_id"}``) to its end; its record."""
    for _ in range(400):
        _, task = await call(client, "GET", f"/bgtask/{answer['bgtask_id']}")
        if task["status"] not in ("pending", "running"):
            return dict(task)
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {answer} did not end")


async def call(client: TestClient, method: str, path: str, **body: Any) -> Any:
    resp = await client.request(method, path, json=body)
    data = await resp.json() if resp.content_type.endswith("json") else None
    return resp.status, data


async def make_folder(client: TestClient, vfid: str = VFID) -> None:
    status, _ = await call(client, "POST", "/folder/create", volume="vol1", vfid=vfid)
    assert status == 204


async def test_health_needs_no_token(client: TestClient) -> None:
    for path in ("/", "/status", "/health", "/livez", "/readyz"):
        resp = await client.get(path, headers={AUTH_HEADER: ""})
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_health_lists_connectivity_as_26_9_6(client: TestClient) -> None:
    body = await (await client.get("/health")).json()
    assert body["component"] == "storage-proxy"
    checks = body["connectivity"]["connectivity_checks"]
    assert body["connectivity"]["overall_healthy"] is True
    assert {(c["service_group"], c["component_id"]) for c in checks} == {
        ("metadata", "store"),
        ("volume", "vol1"),
    }
    assert all(c["is_healthy"] and c["error_message"] is None for c in checks)
    live = await (await client.get("/livez")).json()
    assert [c["service_group"] for c in live["connectivity"]["connectivity_checks"]] == ["metadata"]


async def test_health_is_the_status_in_the_23_09_dialect(legacy_client: TestClient) -> None:
    body = await (await legacy_client.get("/health")).json()
    # storage-proxy 23.9.10 spells it so
    assert body["type"] == "maanger-facing" and "connectivity" not in body


@pytest.mark.parametrize("token", [None, "wrong-secret"])
async def test_a_refused_token_is_403_text_in_the_23_09_dialect(
    legacy_client: TestClient, token: str | None
) -> None:
    legacy_client.session.headers.pop(AUTH_HEADER)
    headers = {AUTH_HEADER: token} if token is not None else {}
    resp = await legacy_client.get("/volumes", headers=headers)
    assert (resp.status, resp.content_type) == (403, "text/plain")
    assert await resp.text() == "403: Forbidden"


@pytest.mark.parametrize("token", [None, "", "wrong-secret"])
async def test_wrong_or_missing_token_is_403_problem(client: TestClient, token: str | None) -> None:
    headers = {AUTH_HEADER: token} if token is not None else {}
    if token is None:
        client.session.headers.pop(AUTH_HEADER)
    resp = await client.get("/volumes", headers=headers)
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["code"] == "invalid-auth-token" and {"type", "title", "detail"} <= set(body)


async def test_volumes(client: TestClient, tmp_path: Path) -> None:
    status, body = await call(client, "GET", "/volumes")
    assert status == 200
    assert body == {
        "volumes": [
            {
                "name": "vol1",
                "backend": "vfs",
                "path": str(tmp_path / "vol1"),
                "fsprefix": ".",
                "capabilities": [
                    "file-versions",
                    "local-path",
                    "quota",
                    "snapshot",
                    "snapshot-quota",
                    "vfolder",
                ],
            }
        ]
    }


async def test_quota_scope_lifecycle(client: TestClient) -> None:
    qsid = str(new_qsid())
    status, _ = await call(
        client, "POST", "/quota-scope", volume="vol1", qsid=qsid, options={"limit_bytes": 1000}
    )
    assert status == 204
    status, body = await call(client, "POST", "/quota-scope", volume="vol1", qsid=qsid)
    assert status == 409 and body["code"] == "quota-scope-exists"
    status, body = await call(client, "GET", "/quota-scope", volume="vol1", qsid=qsid)
    assert (status, body) == (200, {"used_bytes": 0, "limit_bytes": 1000})
    status, _ = await call(
        client, "PATCH", "/quota-scope", volume="vol1", qsid=qsid, options={"limit_bytes": 5000}
    )
    assert status == 204
    status, body = await call(client, "GET", "/quota-scope", volume="vol1", qsid=qsid)
    assert body["limit_bytes"] == 5000
    status, _ = await call(client, "DELETE", "/quota-scope/quota", volume="vol1", qsid=qsid)
    assert status == 204
    status, body = await call(client, "GET", "/quota-scope", volume="vol1", qsid=qsid)
    assert body == {"used_bytes": 0, "limit_bytes": None}
    missing = str(new_qsid())
    status, body = await call(client, "GET", "/quota-scope", volume="vol1", qsid=missing)
    assert status == 404 and body["code"] == "quota-scope-not-found"
    status, body = await call(client, "DELETE", "/quota-scope/quota", volume="vol1", qsid=missing)
    assert status == 404


async def test_patch_creates_missing_scope_like_the_reference(client: TestClient) -> None:
    qsid = str(new_qsid())
    status, _ = await call(
        client, "PATCH", "/quota-scope", volume="vol1", qsid=qsid, options={"limit_bytes": 77}
    )
    assert status == 204
    _, body = await call(client, "GET", "/quota-scope", volume="vol1", qsid=qsid)
    assert body["limit_bytes"] == 77


async def test_folder_create_duplicate_mount_and_layout(client: TestClient, tmp_path: Path) -> None:
    await make_folder(client)
    status, body = await call(client, "POST", "/folder/create", volume="vol1", vfid=VFID)
    assert status == 409 and body["code"] == "vfolder-exists"
    status, body = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    expected = tmp_path / "vol1/11111111222233334444555555555555/aa/bb/ccdd000040008000000000000001"
    assert (status, body) == (200, {"path": str(expected)})
    assert expected.is_dir()


async def test_create_with_initial_quota_for_new_scope(client: TestClient) -> None:
    vfid = new_vfid()
    status, _ = await call(
        client,
        "POST",
        "/folder/create",
        volume="vol1",
        vfid=str(vfid),
        options={"initial_max_size_for_quota_scope": 4096},
    )
    assert status == 204
    _, body = await call(
        client, "GET", "/quota-scope", volume="vol1", qsid=str(vfid.quota_scope_id)
    )
    assert body["limit_bytes"] == 4096


async def test_get_parameters_from_query_string(client: TestClient) -> None:
    await make_folder(client)
    resp = await client.get("/folder/usage", params={"volume": "vol1", "vfid": VFID})
    assert resp.status == 200
    assert await resp.json() == {"file_count": 0, "used_bytes": 0}


async def test_usage_used_bytes_fs_usage(client: TestClient) -> None:
    await make_folder(client)
    _, mount = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    Path(mount["path"], "a.bin").write_bytes(b"x" * 300)
    Path(mount["path"], "d").mkdir()
    Path(mount["path"], "d", "b.bin").write_bytes(b"y" * 45)
    status, body = await call(client, "GET", "/folder/usage", volume="vol1", vfid=VFID)
    # 26.09 counts the directory too, and its bytes (as storage-proxy 26.9.6)
    dir_size = Path(mount["path"], "d").stat().st_size
    assert (status, body) == (200, {"file_count": 3, "used_bytes": 345 + dir_size})
    status, body = await call(client, "GET", "/folder/used-bytes", volume="vol1", vfid=VFID)
    assert (status, body) == (200, {"used_bytes": 345})
    status, body = await call(client, "GET", "/folder/fs-usage", volume="vol1")
    assert status == 200 and body["capacity_bytes"] >= body["used_bytes"] > 0


async def test_file_operations_26_09(client: TestClient) -> None:
    await make_folder(client)
    base = {"volume": "vol1", "vfid": VFID}
    status, body = await call(client, "POST", "/folder/file/mkdir", **base, relpath="a/b")
    assert (status, body) == (
        200,
        {"results": {"success": [{"item": "a/b", "msg": None}], "failed": []}},
    )
    status, body = await call(client, "POST", "/folder/file/mkdir", **base, relpath="a/b")
    assert status == 422 and body["results"]["failed"][0]["code"] == "file-exists"
    status, body = await call(client, "POST", "/folder/file/mkdir", **base, relpath=["x", "../y"])
    assert status == 207 and body["results"]["failed"][0]["code"] == "invalid-path"
    # a refused file operation: 400 {"msg", "errno", "paths"}, as in Backend.AI
    status, body = await call(client, "POST", "/folder/file/list", **base, relpath="nope")
    assert (status, body["msg"], body["errno"], body["paths"]) == (
        400,
        "No such file or directory",
        2,
        ["nope"],
    )
    status, body = await call(
        client, "POST", "/folder/file/rename", **base, relpath="nope", new_name="z"
    )
    assert (status, body["errno"]) == (400, 2)
    # a path already gone is deleted; a directory with something in it needs recursive
    status, body = await call(client, "POST", "/folder/file/delete", **base, relpaths=["nope"])
    assert (status, body) == (200, {"status": "ok"})
    status, body = await call(client, "POST", "/folder/file/delete", **base, relpaths=["a"])
    assert (status, body["errno"], body["code"]) == (400, 39, "directory-not-empty")
    status, body = await call(
        client, "POST", "/folder/file/delete", **base, relpaths=["a", "nope"], recursive=True
    )
    assert (status, body) == (200, {"status": "ok"})


async def test_file_operations_23_09(legacy_client: TestClient) -> None:
    client = legacy_client
    await make_folder(client)
    base = {"volume": "vol1", "vfid": VFID}
    status, _ = await call(client, "POST", "/folder/file/mkdir", **base, relpath="a/b")
    assert status == 204
    # one path, as 23.9.10 takes it: a list is a parameter error
    status, body = await call(client, "POST", "/folder/file/mkdir", **base, relpath=["x", "y"])
    assert (status, body["type"]) == (400, f"{PROBS}storage/invalid-api-params")
    assert set(body["data"]) == {"relpath"}
    status, body = await call(client, "POST", "/folder/file/mkdir", **base, relpath="a/b")
    assert (status, body["msg"], body["errno"], body["paths"]) == (400, "File exists", 17, ["a/b"])
    status, _ = await call(client, "POST", "/folder/file/mkdir", **base, relpath="x")
    assert status == 204
    status, body = await call(client, "POST", "/folder/file/list", **base, relpath=".")
    assert status == 200
    items = {i["name"]: i for i in body["items"]}
    assert set(items) == {"a", "x"}
    item = items["a"]
    assert item["type"] == "DIRECTORY" and item["symlink_target"] == ""
    assert set(item["stat"]) == {"mode", "size", "created", "modified"}
    assert stat.S_ISDIR(item["stat"]["mode"])  # the whole st_mode, as 23.9.10 sends it
    status, _ = await call(
        client, "POST", "/folder/file/rename", **base, relpath="a/b", new_name="c"
    )
    assert status == 204
    status, _ = await call(
        client, "POST", "/folder/file/move", **base, src_relpath="a/c", dst_relpath="x/c"
    )
    assert status == 204
    _, body = await call(client, "POST", "/folder/file/list", **base, relpath="x")
    assert [i["name"] for i in body["items"]] == ["c"]
    # a move names the path the storage refused, as 23.9.10 does: here the destination's
    status, body = await call(
        client, "POST", "/folder/file/move", **base, src_relpath="x/c", dst_relpath="no/c"
    )
    assert (status, body["errno"], body["paths"]) == (400, errno.ENOENT, ["no/c"])
    status, body = await call(client, "POST", "/folder/file/delete", **base, relpaths=["x"])
    assert status == 400 and body["code"] == "directory-not-empty"
    assert (body["errno"], body["paths"]) == (errno.ENOTEMPTY, ["x"])
    status, body = await call(client, "POST", "/folder/file/delete", **base, relpaths=["gone"])
    assert (status, body["errno"], body["paths"]) == (400, errno.ENOENT, ["gone"])
    status, body = await call(
        client, "POST", "/folder/file/delete", **base, relpaths=["x"], recursive=True
    )
    assert (status, body) == (200, {"status": "ok"})


async def test_clone_and_delete_26_09(client: TestClient) -> None:
    """Both answer at once with the task's id (clone 200, delete 202, as 26.9.6)."""
    await make_folder(client)
    base = {"volume": "vol1", "vfid": VFID}
    await call(client, "POST", "/folder/file/mkdir", **base, relpath="keep")
    dst = f"{QSID}/{uuid.uuid4().hex}"
    status, body = await call(
        client, "POST", "/folder/clone", src_volume="vol1", src_vfid=VFID, dst_vfid=dst
    )
    assert status == 200 and set(body) == {"bgtask_id"}
    assert (await wait_task(client, body))["status"] == "done"
    _, listed = await call(client, "POST", "/folder/file/list", volume="vol1", vfid=dst)
    assert [i["name"] for i in listed["items"]] == ["keep"]
    status, body = await call(client, "POST", "/folder/delete", volume="vol1", vfid=dst)
    assert status == 202 and set(body) == {"bgtask_id"}
    assert (await wait_task(client, body))["status"] == "done"
    # a delete that cannot succeed is refused now, not accepted and failed later
    status, body = await call(client, "POST", "/folder/delete", volume="vol1", vfid=dst)
    assert (status, body["code"], body["error_code"]) == (
        404,
        "vfolder-not-found",
        "vfolder_read_not-found",
    )


async def test_clone_and_delete_23_09(legacy_client: TestClient) -> None:
    client = legacy_client
    await make_folder(client)
    base = {"volume": "vol1", "vfid": VFID}
    await call(client, "POST", "/folder/file/mkdir", **base, relpath="keep")
    dst = f"{QSID}/{uuid.uuid4().hex}"
    status, _ = await call(
        client, "POST", "/folder/clone", src_volume="vol1", src_vfid=VFID, dst_vfid=dst
    )
    assert status == 204
    _, body = await call(client, "POST", "/folder/file/list", volume="vol1", vfid=dst, relpath=".")
    assert [i["name"] for i in body["items"]] == ["keep"]
    status, body = await call(
        client,
        "POST",
        "/folder/clone",
        src_volume="vol1",
        src_vfid=VFID,
        dst_volume="other",
        dst_vfid=dst,
    )
    assert status == 400 and body["code"] == "invalid-parameter"
    status, _ = await call(client, "POST", "/folder/delete", volume="vol1", vfid=dst)
    assert status == 204
    status, body = await call(client, "POST", "/folder/delete", volume="vol1", vfid=dst)
    assert status == 404 and body["code"] == "vfolder-not-found"


async def test_quota_enforced_on_clone_26_09(client: TestClient) -> None:
    await make_folder(client)
    _, mount = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    Path(mount["path"], "blob").write_bytes(b"b" * 6000)
    await call(
        client, "PATCH", "/quota-scope", volume="vol1", qsid=QSID, options={"limit_bytes": 10000}
    )
    dst = f"{QSID}/{uuid.uuid4().hex}"
    status, body = await call(
        client, "POST", "/folder/clone", src_volume="vol1", src_vfid=VFID, dst_vfid=dst
    )
    assert status == 200
    task = await wait_task(client, body)
    assert task["status"] == "failed" and task["error"]["code"] == "quota-exceeded"
    status, _ = await call(client, "GET", "/folder/usage", volume="vol1", vfid=dst)
    assert status == 404


async def test_quota_enforced_on_clone_through_api(legacy_client: TestClient) -> None:
    client = legacy_client
    await make_folder(client)
    _, mount = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    Path(mount["path"], "blob").write_bytes(b"b" * 6000)
    await call(
        client, "PATCH", "/quota-scope", volume="vol1", qsid=QSID, options={"limit_bytes": 10000}
    )
    dst = f"{QSID}/{uuid.uuid4().hex}"
    status, body = await call(
        client, "POST", "/folder/clone", src_volume="vol1", src_vfid=VFID, dst_vfid=dst
    )
    assert status == 413 and body["code"] == "quota-exceeded"
    status, body = await call(client, "GET", "/folder/mount", volume="vol1", vfid=dst)
    assert (status, body["msg"]) == (400, "VFolder not found")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        (
            "POST",
            "/folder/create",
            {"volume": "vol1", "vfid": "not-a-vfid"},
            400,
            "invalid-parameter",
        ),
        ("POST", "/folder/create", {"volume": "nope", "vfid": VFID}, 400, "volume-not-found"),
        ("POST", "/folder/create", {"vfid": VFID}, 400, "invalid-parameter"),
        ("GET", "/folder/usage", {"volume": "vol1", "vfid": VFID}, 404, "vfolder-not-found"),
        ("POST", "/quota-scope", {"volume": "vol1", "qsid": "group:x"}, 400, "invalid-parameter"),
        ("GET", "/no/such/route", {}, 404, "no-such-route"),
        ("DELETE", "/volumes", {}, 405, "method-not-allowed"),
    ],
)
async def test_user_errors_are_4xx_problems(
    client: TestClient, method: str, path: str, body: dict, status: int, code: str
) -> None:
    resp = await client.request(method, path, json=body)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == code


async def test_missing_volume_and_vfolder_in_the_23_09_dialect(legacy_client: TestClient) -> None:
    """23.9.10 answers these with a 500: ours are the daemon's own problems."""
    for path, body, status, code in (
        ("/folder/create", {"volume": "nope", "vfid": VFID}, 404, "volume-not-found"),
        ("/folder/usage", {"volume": "vol1", "vfid": VFID}, 404, "vfolder-not-found"),
    ):
        resp = await legacy_client.request("POST" if "create" in path else "GET", path, json=body)
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
        assert (resp.status, problem["code"]) == (status, code)
        assert problem["type"] == f"urn:storage-proxy:problem:{code}"
    # /folder/mount answers 400 {"msg", "vfid"} in both releases
    status, body = await call(legacy_client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    assert (status, body["msg"], body["vfid"]) == (400, "VFolder not found", VFID)


async def test_missing_vfolder_mount_is_400_msg_as_in_backend_ai(client: TestClient) -> None:
    status, body = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    assert (status, body["msg"], body["vfid"]) == (400, "VFolder not found", VFID)


async def test_malformed_json_body(client: TestClient) -> None:
    resp = await client.post("/folder/create", data=b"{not json")
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid-parameter"


@pytest.mark.parametrize(
    "relpath", ["../x", "a/../../x", "/etc", "a\x00b", "../../../../etc/passwd"]
)
async def test_hostile_relpaths_rejected(client: TestClient, relpath: str) -> None:
    await make_folder(client)
    for path, body in [
        ("/folder/file/mkdir", {"relpath": relpath}),
        ("/folder/file/list", {"relpath": relpath}),
        ("/folder/file/delete", {"relpaths": [relpath]}),
        ("/folder/file/move", {"src_relpath": "a", "dst_relpath": relpath}),
    ]:
        status, data = await call(client, "POST", path, volume="vol1", vfid=VFID, **body)
        if path.endswith("mkdir"):  # per item, as 26.9.6 answers a '..'
            assert status == 422, path
            data = data["results"]["failed"][0]
        assert (status // 100, data["code"]) == (4, "invalid-path"), path


async def test_symlink_escape_rejected(client: TestClient, tmp_path: Path) -> None:
    await make_folder(client)
    _, mount = await call(client, "GET", "/folder/mount", volume="vol1", vfid=VFID)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    Path(mount["path"], "evil").symlink_to(outside)
    status, body = await call(
        client, "POST", "/folder/file/list", volume="vol1", vfid=VFID, relpath="evil"
    )
    assert (status, body["code"]) == (400, "invalid-path")
    status, body = await call(
        client, "POST", "/folder/file/mkdir", volume="vol1", vfid=VFID, relpath="evil/new"
    )
    assert (status, body["results"]["failed"][0]["code"]) == (422, "invalid-path")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    status, body = await call(
        client, "GET", "/folder/mount", volume="vol1", vfid=VFID, subpath="evil"
    )
    assert (status, body["msg"]) == (400, "Invalid vfolder subpath")
