"""The user file API (/api/v1) and RO / RW / RWD permissions enforced on every operation."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from api_fixtures import Daemon

OWNER_QS = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{OWNER_QS}/aabbccdd000040008000000000000001"
GROUP_VFID = "project:99999999-2222-3333-4444-555555555555/0123456789abcdef0123456789abcdef"
BASE = f"/api/v1/vfolders/vol1/{VFID}"


def token(daemon: Daemon, sub: str, groups: list[str] | None = None) -> dict[str, str]:
    t = daemon.ctx.tokens.issue_user(sub, groups or [], timedelta(minutes=5))
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
async def shared(daemon: Daemon) -> Daemon:
    """alice owns VFID; bob has ro, carol rw, dave rwd; group 'ml' owns GROUP_VFID."""
    for vfid in (VFID, GROUP_VFID):
        status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=vfid)
        assert status == 204
    status, body = await daemon.call(
        "PUT",
        "/folder/acl",
        volume="vol1",
        vfid=VFID,
        owner="alice",
        kind="user",
        entries=[
            {"principal": "user:bob", "permission": "ro"},
            {"principal": "user:carol", "permission": "rw"},
            {"principal": "user:dave", "permission": "rwd"},
        ],
    )
    assert status == 200 and len(body["entries"]) == 3
    status, _ = await daemon.call(
        "PUT", "/folder/acl", volume="vol1", vfid=GROUP_VFID, owner="ml", kind="group", entries=[]
    )
    assert status == 200
    resp = await daemon.client.put(
        f"{BASE}/files/docs/readme.txt", data=b"hello", headers=token(daemon, "alice")
    )
    assert resp.status == 201
    return daemon


async def status_of(daemon: Daemon, method: str, path: str, user: str, **kw: Any) -> int:
    resp = await daemon.client.request(method, path, headers=token(daemon, user), **kw)
    if resp.status >= 400:
        body = await resp.json()
        assert resp.content_type == "application/problem+json" and "code" in body
    return resp.status


async def test_requires_a_user_token(shared: Daemon) -> None:
    resp = await shared.client.get(f"{BASE}/files")
    assert resp.status == 401
    resp = await shared.client.get(f"{BASE}/files", headers={"Authorization": "Bearer junk"})
    assert resp.status == 401


async def test_list_visible_vfolders(shared: Daemon) -> None:
    resp = await shared.client.get("/api/v1/vfolders", headers=token(shared, "bob", ["ml"]))
    items = {(i["vfid"], i["permission"]) for i in (await resp.json())["vfolders"]}
    assert items == {(VFID, "ro"), (GROUP_VFID, "rw")}
    resp = await shared.client.get("/api/v1/vfolders", headers=token(shared, "mallory"))
    assert (await resp.json())["vfolders"] == []


@pytest.mark.parametrize(
    ("user", "read", "write", "delete"),
    [
        ("alice", 200, 201, 204),
        ("dave", 200, 201, 204),
        ("carol", 200, 201, 403),
        ("bob", 200, 403, 403),
        ("mallory", 404, 404, 404),  # cannot see it at all: existence is not leaked
    ],
)
async def test_permissions_on_every_operation(
    shared: Daemon, user: str, read: int, write: int, delete: int
) -> None:
    d = shared
    assert await status_of(d, "GET", f"{BASE}/files", user) == read
    assert await status_of(d, "GET", f"{BASE}/files/docs/readme.txt", user) == read
    assert await status_of(d, "GET", f"{BASE}/metadata/docs/readme.txt", user) == read
    assert await status_of(d, "PUT", f"{BASE}/files/new-{user}.txt", user, data=b"x") == write
    meta_write = 200 if write == 201 else write
    assert (
        await status_of(d, "PATCH", f"{BASE}/metadata/docs/readme.txt", user, json={"tags": {}})
        == meta_write
    )
    assert await status_of(d, "POST", f"{BASE}/mkdir", user, json={"path": f"dir-{user}"}) == write
    move_status = 200 if write == 201 else write
    assert (
        await status_of(
            d, "POST", f"{BASE}/move", user, json={"src": "docs/readme.txt", "dst": "moved.txt"}
        )
        == move_status
    )
    if move_status == 200:  # put it back for the delete check
        await d.client.post(
            f"{BASE}/move",
            json={"src": "moved.txt", "dst": "docs/readme.txt"},
            headers=token(d, "alice"),
        )
    assert await status_of(d, "DELETE", f"{BASE}/files/docs/readme.txt", user) == delete


async def test_group_members_read_and_write(shared: Daemon) -> None:
    base = f"/api/v1/vfolders/vol1/{GROUP_VFID}"
    assert await status_of(shared, "PUT", f"{base}/files/a.txt", "erin", data=b"a") == 404
    hdr = token(shared, "erin", ["ml"])
    resp = await shared.client.put(f"{base}/files/a.txt", data=b"a", headers=hdr)
    assert resp.status == 201
    resp = await shared.client.delete(f"{base}/files/a.txt", headers=hdr)
    assert resp.status == 403  # members have rw; deleting needs rwd
    await shared.call(
        "POST",
        "/folder/acl/grant",
        volume="vol1",
        vfid=GROUP_VFID,
        principal="group:ml",
        permission="rwd",
    )
    resp = await shared.client.delete(f"{base}/files/a.txt", headers=hdr)
    assert resp.status == 204


async def test_acl_change_takes_effect_immediately(shared: Daemon) -> None:
    assert await status_of(shared, "GET", f"{BASE}/files", "bob") == 200
    status, body = await shared.call(
        "POST", "/folder/acl/revoke", volume="vol1", vfid=VFID, principal="user:bob"
    )
    assert status == 200 and "user:bob" not in json.dumps(body)
    assert await status_of(shared, "GET", f"{BASE}/files", "bob") == 404


async def test_upload_raw_with_checksums_metadata_and_download(shared: Daemon) -> None:
    body = b"0123456789" * 10_000
    hdr = {**token(shared, "alice"), "Content-Type": "application/x-test", "X-Tags": '{"k": "v"}'}
    resp = await shared.client.put(f"{BASE}/files/data/blob.bin", data=body, headers=hdr)
    assert resp.status == 201
    meta = await resp.json()
    assert meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert (meta["size"], meta["content_type"], meta["tags"]) == (
        len(body),
        "application/x-test",
        {"k": "v"},
    )
    resp = await shared.client.get(f"{BASE}/metadata/data/blob.bin", headers=token(shared, "bob"))
    assert (await resp.json())["sha256"] == meta["sha256"]
    resp = await shared.client.patch(
        f"{BASE}/metadata/data/blob.bin",
        json={"content_type": "text/plain", "tags": {"stage": "raw"}},
        headers=token(shared, "carol"),
    )
    updated = await resp.json()
    assert (updated["content_type"], updated["tags"], updated["sha256"]) == (
        "text/plain",
        {"stage": "raw"},
        meta["sha256"],
    )
    resp = await shared.client.get(
        f"{BASE}/files/data/blob.bin", headers={**token(shared, "bob"), "Range": "bytes=5-14"}
    )
    assert resp.status == 206 and await resp.read() == body[5:15]


async def test_multipart_upload(shared: Daemon) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"form bytes", filename="report.csv", content_type="text/csv")
    resp = await shared.client.post(
        f"{BASE}/files/reports/", data=form, headers=token(shared, "carol")
    )
    assert resp.status == 201
    meta = await resp.json()
    assert meta["path"] == "reports/report.csv" and meta["content_type"] == "text/csv"
    assert meta["sha256"] == hashlib.sha256(b"form bytes").hexdigest()
    resp = await shared.client.get(f"{BASE}/files/reports/report.csv", headers=token(shared, "bob"))
    assert await resp.read() == b"form bytes"


async def test_list_with_prefix_marker_limit(shared: Daemon) -> None:
    hdr = token(shared, "alice")
    for name in ["a/1", "a/2", "a/3", "b/1", "c"]:
        await shared.client.put(f"{BASE}/files/{name}", data=b"x", headers=hdr)
    resp = await shared.client.get(f"{BASE}/files", params={"limit": "2"}, headers=hdr)
    page = await resp.json()
    assert [f["path"] for f in page["files"]] == ["a/1", "a/2"]
    assert page["truncated"] is True and page["next_marker"] == "a/2"
    resp = await shared.client.get(
        f"{BASE}/files", params={"limit": "10", "marker": "a/2"}, headers=hdr
    )
    rest = await resp.json()
    assert [f["path"] for f in rest["files"]] == ["a/3", "b/1", "c", "docs/readme.txt"]
    assert rest["truncated"] is False and rest["next_marker"] is None
    resp = await shared.client.get(f"{BASE}/files", params={"prefix": "a/"}, headers=hdr)
    assert [f["path"] for f in (await resp.json())["files"]] == ["a/1", "a/2", "a/3"]
    resp = await shared.client.get(f"{BASE}/files", params={"limit": "0"}, headers=hdr)
    assert resp.status == 400


async def test_quota_cuts_off_a_stream_and_keeps_nothing(shared: Daemon) -> None:
    await shared.call(
        "PATCH", "/quota-scope", volume="vol1", qsid=OWNER_QS, options={"limit_bytes": 50_000}
    )

    async def body() -> Any:
        for _ in range(10):
            yield b"z" * 10_000  # no Content-Length: the limit is found mid-stream

    resp = await shared.client.put(
        f"{BASE}/files/huge.bin", data=body(), headers=token(shared, "alice")
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "quota-exceeded"
    resp = await shared.client.get(f"{BASE}/files/huge.bin", headers=token(shared, "alice"))
    assert resp.status == 404
    resp = await shared.client.put(
        f"{BASE}/files/big.bin", data=b"z" * 60_000, headers=token(shared, "alice")
    )
    assert resp.status == 413  # declared size refused up front


async def test_hostile_paths_in_urls(shared: Daemon) -> None:
    hdr = token(shared, "alice")
    resp = await shared.client.put(f"{BASE}/files/a/%2e%2e/%2e%2e/x", data=b"x", headers=hdr)
    assert resp.status in (400, 404)
    resp = await shared.client.post(f"{BASE}/mkdir", json={"path": "../../escape"}, headers=hdr)
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid-path")
