"""Versions of files through both doors: the vfolder's setting, overwrites, moves, deletes, tus
publications and snapshot restores that keep what they replace, listing/downloading (RO),
restoring (RW) and deleting (RWD) versions, limits under a quota, and hostile ids and paths."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Daemon
from test_file_api import BASE, OWNER_QS, VFID, shared, status_of, token  # noqa: F401
from test_snapshots_api import audited

from storage_proxy.core.types import VFolderID

pytestmark = pytest.mark.usefixtures("shared")
VF = {"volume": "vol1", "vfid": VFID}


async def put(d: Daemon, path: str, data: bytes, user: str = "alice") -> int:
    resp = await d.client.put(f"{BASE}/files/{path}", data=data, headers=token(d, user))
    return resp.status


async def versions_of(d: Daemon, path: str, user: str = "alice") -> list[dict[str, Any]]:
    resp = await d.client.get(f"{BASE}/versions/{path}", headers=token(d, user))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["path"] == path
    return body["versions"]  # type: ignore[no-any-return]


async def keep(d: Daemon, n: int) -> None:
    status, _ = await d.call("PUT", "/folder/versions", **VF, versions=n)
    assert status == 204


async def test_overwrites_keep_versions_up_to_the_setting(shared: Daemon) -> None:  # noqa: F811
    d = shared
    status, body = await d.call("GET", "/folder/versions", **VF)
    assert status == 200 and body == {"versions": 0}
    await put(d, "f.txt", b"v0")
    await put(d, "f.txt", b"v1")
    assert await versions_of(d, "f.txt") == []  # off by default
    await keep(d, 2)
    assert (await d.call("GET", "/folder/versions", **VF))[1] == {"versions": 2}
    for n in range(2, 5):
        assert await put(d, "f.txt", b"v%d" % n, user="carol") == 201
    kept = await versions_of(d, "f.txt", user="bob")  # RO lists
    assert [v["size"] for v in kept] == [2, 2]
    assert kept[0]["sha256"] == hashlib.sha256(b"v3").hexdigest()
    assert kept[0]["who"] == "user:carol" and kept[0]["reason"] == "overwrite"
    assert kept[0]["kept"] >= kept[1]["kept"]

    # download (RO), with ranges
    url = f"{BASE}/version/{kept[1]['version_id']}/f.txt"
    resp = await d.client.get(url, headers=token(d, "bob"))
    assert resp.status == 200 and await resp.read() == b"v2"
    resp = await d.client.get(url, headers={**token(d, "bob"), "Range": "bytes=1-1"})
    assert resp.status == 206 and await resp.read() == b"2"

    # restore: RW; the current content becomes a version
    assert await status_of(d, "POST", url, "bob") == 403
    resp = await d.client.post(url, headers=token(d, "carol"))
    assert resp.status == 200 and (await resp.json())["size"] == 2
    assert (await d.client.get(f"{BASE}/files/f.txt", headers=token(d, "bob"))).status == 200
    got = await d.client.get(f"{BASE}/files/f.txt", headers=token(d, "bob"))
    assert await got.read() == b"v2"
    kept = await versions_of(d, "f.txt")
    assert kept[0]["reason"] == "restore" and len(kept) == 2

    # delete: RWD
    victim = f"{BASE}/version/{kept[0]['version_id']}/f.txt"
    assert await status_of(d, "DELETE", victim, "carol") == 403
    assert await status_of(d, "DELETE", victim, "dave") == 204
    assert await status_of(d, "DELETE", victim, "dave") == 404
    assert len(await versions_of(d, "f.txt")) == 1

    # the manager routes
    status, listed = await d.call("POST", "/folder/file/versions", **VF, relpath="f.txt")
    assert status == 200 and len(listed["versions"]) == 1
    vid = listed["versions"][0]["version_id"]
    status, meta = await d.call(
        "POST", "/folder/file/version/restore", **VF, relpath="f.txt", version_id=vid
    )
    assert status == 200 and meta["path"] == "f.txt"
    status, listed = await d.call("POST", "/folder/file/versions", **VF, relpath="f.txt")
    vid = listed["versions"][0]["version_id"]
    status, _ = await d.call(
        "POST", "/folder/file/version/delete", **VF, relpath="f.txt", version_id=vid
    )
    assert status == 204
    await audited(d, "versions.set", "version.restore", "version.delete", "version.download")


async def test_moves_deletes_uploads_and_restores_keep_too(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await keep(d, 3)
    await put(d, "a.txt", b"first")
    await put(d, "b.txt", b"mover")
    resp = await d.client.post(
        f"{BASE}/move", json={"src": "b.txt", "dst": "a.txt"}, headers=token(d, "alice")
    )
    assert resp.status == 200
    assert [(v["reason"], v["size"]) for v in await versions_of(d, "a.txt")] == [("move", 5)]
    assert await status_of(d, "DELETE", f"{BASE}/files/a.txt", "alice") == 204
    reasons = [v["reason"] for v in await versions_of(d, "a.txt")]
    assert reasons == ["delete", "move"]

    # a tus upload published over a file
    await put(d, "up.bin", b"old-upload")
    headers = {
        **token(d, "alice"),
        "Tus-Resumable": "1.0.0",
        "Upload-Length": "3",
        "Upload-Metadata": _tus_meta("vol1", VFID, "up.bin"),
    }
    resp = await d.client.post("/upload", headers=headers)
    assert resp.status == 201, await resp.text()
    patch = {
        **token(d, "alice"),
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    resp = await d.client.patch(resp.headers["Location"], data=b"new", headers=patch)
    assert resp.status == 204
    assert [v["size"] for v in await versions_of(d, "up.bin")] == [len(b"old-upload")]

    # a snapshot restored in place keeps what it replaces
    status, _ = await d.call("POST", "/folder/snapshot", **VF, name="s")
    assert status == 201
    await put(d, "up.bin", b"after the snapshot")
    status, _ = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="s", relpaths=["up.bin"]
    )
    assert status == 200
    kept = await versions_of(d, "up.bin")
    assert kept[0]["reason"] == "restore" and kept[0]["size"] == len(b"after the snapshot")

    # versions = 0: nothing more is kept, nothing kept is lost
    await keep(d, 0)
    before = await versions_of(d, "up.bin")
    await put(d, "up.bin", b"again")
    assert await versions_of(d, "up.bin") == before


def _tus_meta(volume: str, vfid: str, path: str) -> str:
    import base64

    def b64(v: str) -> str:
        return base64.b64encode(v.encode()).decode()

    return f"volume {b64(volume)},vfid {b64(vfid)},path {b64(path)}"


async def test_versions_count_against_the_scope_quota(shared: Daemon) -> None:  # noqa: F811
    d = shared
    status, _ = await d.call(
        "PATCH", "/quota-scope", volume="vol1", qsid=OWNER_QS, options={"limit_bytes": 10_000}
    )
    assert status == 204
    await keep(d, 10)
    statuses = [await put(d, "big.bin", bytes([n]) * 3000) for n in range(6)]
    assert statuses[:3] == [201, 201, 201]  # 3000, then 3000 + 3000 kept, then 9000
    assert statuses[3:] == [413, 413, 413], statuses
    status, usage = await d.call("GET", "/quota-scope", volume="vol1", qsid=OWNER_QS)
    assert usage["used_bytes"] <= 10_000


async def test_not_supported_and_bad_input(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await put(d, "f.txt", b"1")
    for bad in ("..", "x%2F..%2F..", "0000000000000000-00000000", "a" * 200):
        assert await status_of(d, "GET", f"{BASE}/version/{bad}/f.txt", "alice") in (400, 404)
    status, body = await d.call("PUT", "/folder/versions", **VF, versions=-1)
    assert status == 400
    status, body = await d.call("PUT", "/folder/versions", **VF, versions=100_000)
    assert status == 400


@pytest.mark.hostile
async def test_no_user_path_reaches_the_versions_area(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await keep(d, 2)
    await put(d, "f.txt", b"secret-old")
    await put(d, "f.txt", b"new")
    volume = d.ctx.services.vfolders.volumes.get("vol1")
    vfid = VFolderID.parse(VFID)
    root: Path = volume.vfolder_path(vfid)  # type: ignore[attr-defined]
    area: Path = volume.versions_area(vfid)  # type: ignore[attr-defined]
    assert area.is_dir() and not str(area).startswith(str(root) + "/")
    os.symlink(str(area), root / "to-versions")
    os.symlink(os.path.relpath(area, root), root / "rel-versions")
    for probe in ("to-versions", "rel-versions", "../../../.sp-versions"):
        status = await status_of(d, "GET", f"{BASE}/files/{probe}?archive=true", "alice")
        assert status in (400, 404), probe
    resp = await d.client.get(f"{BASE}/files", headers=token(d, "alice"))
    names = [f["path"] for f in (await resp.json())["files"]]
    assert "f.txt" in names and not any(".sp-" in n for n in names)
    # versions of a link's name are the link's own path, never where it points
    assert await versions_of(d, "to-versions") == []
