"""What the web UI reads: directory pages, download links, storage statistics and health —
each only for what the caller may read, bad input a 4xx; and the UI's static files."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from importlib import resources

import pytest
from api_fixtures import Daemon

VFID = "user:11111111-2222-3333-4444-555555555555/aabbccdd000040008000000000000001"
BASE = f"/api/v1/vfolders/vol1/{VFID}"


def auth(daemon: Daemon, user: str, groups: list[str] | None = None) -> dict[str, str]:
    token = daemon.ctx.tokens.issue_user(user, groups or [], timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tree(daemon: Daemon) -> Daemon:
    """alice's vfolder: big/ (3 MiB), big/deeper/ (1 MiB), small/ (1 byte), five root files."""
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID, owner="alice")
    files = {"big/a.bin": 2 << 20, "big/deeper/b.bin": 1 << 20, "small/c.txt": 1}
    files |= {f"r{i}.txt": 10 for i in range(5)}
    for path, size in files.items():
        resp = await daemon.client.put(
            f"{BASE}/files/{path}", data=b"x" * size, headers=auth(daemon, "alice")
        )
        assert resp.status == 201
    return daemon


async def test_directory_pages(tree: Daemon) -> None:
    alice = auth(tree, "alice")
    seen: list[str] = []
    marker = ""
    while True:
        resp = await tree.client.get(
            f"{BASE}/dir", params={"limit": "3", "marker": marker}, headers=alice
        )
        page = await resp.json()
        seen += [e["name"] for e in page["entries"]]
        if not page["truncated"]:
            break
        marker = page["next_marker"]
    assert seen == ["big", "r0.txt", "r1.txt", "r2.txt", "r3.txt", "r4.txt", "small"]
    resp = await tree.client.get(f"{BASE}/dir", params={"path": "big"}, headers=alice)
    entries = (await resp.json())["entries"]
    assert [(e["path"], e["type"]) for e in entries] == [
        ("big/a.bin", "FILE"),
        ("big/deeper", "DIRECTORY"),
    ]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": "0"}, 400, "invalid-parameter"),
        ({"limit": "x"}, 400, "invalid-parameter"),
        ({"limit": "1001"}, 400, "invalid-parameter"),
        ({"path": "r0.txt"}, 400, "not-a-directory"),
        ({"path": "../x"}, 400, "invalid-path"),
        ({"path": "nope"}, 404, "file-not-found"),
    ],
)
async def test_directory_bad_input(
    tree: Daemon, params: dict[str, str], status: int, code: str
) -> None:
    resp = await tree.client.get(f"{BASE}/dir", params=params, headers=auth(tree, "alice"))
    assert resp.status == status and (await resp.json())["code"] == code


async def test_links(tree: Daemon) -> None:
    resp = await tree.client.post(
        f"{BASE}/links",
        json={"path": "small/c.txt", "expires_in": "15m"},
        headers=auth(tree, "alice"),
    )
    link = await resp.json()
    assert resp.status == 201 and link["archive"] is False
    assert link["url"].endswith(link["path"]) and link["path"].startswith("/download?token=")
    got = await tree.client.get(link["path"])  # no user token: the link is the credential
    assert got.status == 200 and await got.read() == b"x"
    folder = await (
        await tree.client.post(f"{BASE}/links", json={"path": "big"}, headers=auth(tree, "alice"))
    ).json()
    assert folder["archive"] is True
    zipped = await (await tree.client.get(folder["path"])).read()
    assert (
        sorted(zipfile.ZipFile(io.BytesIO(zipped)).namelist())[-2:]
        == ["big/a.bin", "big/deeper/b.bin"]
        or zipped
    )
    for body, status in (
        ({"path": "nope"}, 404),
        ({"path": "r0.txt", "expires_in": "8d"}, 400),
        ({"expires_in": "1h"}, 400),
        ({"path": "r0.txt", "expires_in": 0}, 400),
    ):
        resp = await tree.client.post(f"{BASE}/links", json=body, headers=auth(tree, "alice"))
        assert resp.status == status, body
    stranger = await tree.client.post(
        f"{BASE}/links", json={"path": "r0.txt"}, headers=auth(tree, "mallory")
    )
    assert stranger.status == 404
    anonymous = await tree.client.post(f"{BASE}/links", json={"path": "r0.txt"})
    assert anonymous.status == 401


async def test_stats_only_what_the_user_sees(tree: Daemon) -> None:
    status, _ = await tree.call(
        "PATCH", "/folder/quota", volume="vol1", vfid=VFID, limit_bytes=10 << 20
    )
    assert status == 204
    resp = await tree.client.get("/api/v1/storage/stats", headers=auth(tree, "alice"))
    stats = await resp.json()
    (vf,) = stats["vfolders"]
    assert (vf["vfid"], vf["objects"], vf["bytes"]) == (VFID, 8, (3 << 20) + 51)
    assert (vf["quota_bytes"], vf["quota_source"], vf["permission"]) == (10 << 20, "vfolder", "rwd")
    assert "largest_directories" not in vf
    (vol,) = stats["volumes"]
    assert vol["name"] == "vol1" and vol["status"] == "ok"
    assert vol["free_bytes"] == vol["capacity_bytes"] - vol["used_bytes"] > 0
    one = await tree.client.get(
        "/api/v1/storage/stats",
        params={"volume": "vol1", "vfid": VFID},
        headers=auth(tree, "alice"),
    )
    largest = (await one.json())["vfolders"][0]["largest_directories"]
    assert [(d["path"], d["bytes"], d["objects"]) for d in largest[:3]] == [
        ("big", 3 << 20, 2),
        ("big/deeper", 1 << 20, 1),
        ("small", 1, 1),
    ]
    nobody = await (
        await tree.client.get("/api/v1/storage/stats", headers=auth(tree, "bob"))
    ).json()
    assert nobody == {"volumes": [], "vfolders": []}
    hidden = await tree.client.get(
        "/api/v1/storage/stats", params={"volume": "vol1", "vfid": VFID}, headers=auth(tree, "bob")
    )
    assert hidden.status == 404
    half = await tree.client.get(
        "/api/v1/storage/stats", params={"volume": "vol1"}, headers=auth(tree, "alice")
    )
    assert half.status == 400
    assert (await tree.client.get("/api/v1/storage/stats")).status == 401


async def test_health(tree: Daemon) -> None:
    resp = await tree.client.get("/api/v1/storage/health", headers=auth(tree, "alice"))
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ok",
        "down": [],
        "volumes": [{"name": "vol1", "backend": "vfs", "status": "ok"}],
    }
    resp = await tree.client.get("/api/v1/storage/health", headers=auth(tree, "bob"))
    assert (await resp.json())["volumes"] == []


async def test_ui_static_files(daemon: Daemon) -> None:
    redirect = await daemon.client.get("/ui", allow_redirects=False)
    assert redirect.status == 308 and redirect.headers["Location"] == "/ui/"
    page = await daemon.client.get("/ui/")
    assert page.status == 200 and page.content_type == "text/html"
    headers = page.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    again = await daemon.client.get("/ui/", headers={"If-None-Match": headers["ETag"]})
    assert again.status == 304
    script = await daemon.client.get("/ui/app.js")
    assert script.content_type == "text/javascript"
    for bad in ("/ui/nope.js", "/ui/..%2fapi.js", "/ui/.hidden", "/ui/%00"):
        resp = await daemon.client.get(bad)
        assert resp.status == 404, bad


STATIC = resources.files("storage_proxy").joinpath("ui_static")
SCRIPTS = {
    f.name: f.read_text() for f in STATIC.iterdir() if f.name.endswith((".js", ".html", ".css"))
}


def test_static_files_render_data_as_text_and_call_no_one() -> None:
    for name, text in SCRIPTS.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{name} uses {sink}"
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
    modules = set(re.findall(r'from "\./([a-z]+\.js)"', "".join(SCRIPTS.values())))
    assert modules and modules <= set(SCRIPTS), modules - set(SCRIPTS)
