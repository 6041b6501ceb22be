"""Snapshots through both doors: the manager routes (tasks with progress where they copy), the
file API's read-only browsing and downloads, RO/RW rules, audit lines, not-supported volumes,
and paths that try to reach the snapshot area or leave the vfolder on a restore."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Daemon
from test_file_api import BASE, VFID, shared, status_of, token  # noqa: F401  (fixture)

from storage_proxy.core.types import Capability
from storage_proxy_vfs import VfsVolume

pytestmark = pytest.mark.usefixtures("shared")
VF = {"volume": "vol1", "vfid": VFID}


async def put(daemon: Daemon, path: str, data: bytes, user: str = "alice") -> None:
    resp = await daemon.client.put(f"{BASE}/files/{path}", data=data, headers=token(daemon, user))
    assert resp.status == 201, await resp.text()


async def get(daemon: Daemon, path: str, user: str = "alice") -> tuple[int, bytes]:
    resp = await daemon.client.get(f"{BASE}/files/{path}", headers=token(daemon, user))
    return resp.status, await resp.read()


async def snapshot(daemon: Daemon, name: str | None = None, **extra: Any) -> tuple[int, Any]:
    body: dict[str, Any] = {**VF, **extra}
    if name is not None:
        body["name"] = name
    return await daemon.call("POST", "/folder/snapshot", **body)


async def audited(d: Daemon, *ops: str) -> None:
    """Each of ``ops`` has an ``ok`` line (the audit file is written by its own thread)."""

    def missing() -> set[str]:
        lines = d.ctx.services.audit.recent("vol1", VFID, 500)
        return set(ops) - {line["operation"] for line in lines if line["result"] == "ok"}

    async with asyncio.timeout(5):
        while missing():  # noqa: ASYNC110 - polling what another thread writes
            await asyncio.sleep(0.02)


def vfolder_dir(daemon: Daemon) -> Path:
    volume = daemon.ctx.services.vfolders.volumes.get("vol1")
    from storage_proxy.core.types import VFolderID

    return volume.vfolder_path(VFolderID.parse(VFID))  # type: ignore[attr-defined,no-any-return]


async def test_take_list_browse_restore_delete(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await put(d, "data/a.txt", b"a-old")
    status, made = await snapshot(d, "first")
    assert status == 201, made
    assert made["snapshot_id"] == "first" and made["bgtask_id"]  # by copies: a task
    assert made["size"] == len(b"hello") + len(b"a-old")
    status, again = await snapshot(d, "first")
    assert status == 409 and again["code"] == "snapshot-exists"

    await put(d, "data/a.txt", b"a-new!")
    await put(d, "data/b.txt", b"b-new")
    status, listed = await d.call("GET", "/folder/snapshots", **VF)
    assert status == 200 and [s["snapshot_id"] for s in listed["snapshots"]] == ["first"]

    status, files = await d.call("POST", "/folder/snapshot/files", **VF, snapshot_id="first",
                                 relpath="data")  # fmt: skip
    assert status == 200 and [i["path"] for i in files["items"]] == ["data/a.txt"]

    # one file back in place; the rest untouched
    status, done = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="first", relpaths=["data/a.txt"]
    )
    assert status == 200 and done["files"] == 1 and done["bytes"] == 5, done
    assert (await get(d, "data/a.txt"))[1] == b"a-old"
    assert (await get(d, "data/b.txt"))[1] == b"b-new"

    # into a new directory, as a background task followed on /bgtask
    status, started = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="first", into="back", background=True
    )
    assert status == 202
    task = await d.ctx.services.bgtasks.wait(started["bgtask_id"])
    assert task.kind == "snapshot-restore" and task.result["files"] == 2
    status, record = await d.call("GET", f"/bgtask/{started['bgtask_id']}")
    assert record["status"] == "done" and record["current_progress"] == record["total_progress"]
    assert (await get(d, "back/data/a.txt"))[1] == b"a-old"
    status, again = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="first", into="back"
    )
    assert status == 409 and again["code"] == "file-exists"

    # the whole vfolder: b.txt and back/ did not exist then
    status, done = await d.call("POST", "/folder/snapshot/restore", **VF, snapshot_id="first")
    assert status == 200
    assert (await get(d, "data/b.txt"))[0] == 404 and (await get(d, "back/data/a.txt"))[0] == 404

    status, _ = await d.call("POST", "/folder/snapshot/delete", **VF, snapshot_id="first")
    assert status == 204
    status, gone = await d.call("POST", "/folder/snapshot/delete", **VF, snapshot_id="first")
    assert status == 404 and gone["code"] == "snapshot-not-found"
    status, listed = await d.call("GET", "/folder/snapshots", **VF)
    assert listed["snapshots"] == []

    await audited(d, "snapshot.create", "snapshot.restore", "snapshot.delete")


async def test_a_generated_name_and_bad_names(shared: Daemon) -> None:  # noqa: F811
    status, made = await snapshot(shared)
    assert status == 201 and made["snapshot_id"].startswith("snap-")
    for bad in ("../x", ".hidden", "a/b", "_ceph", "x" * 65, ""):
        status, body = await snapshot(shared, bad)
        assert status == 400, (bad, body)
    status, body = await shared.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="../../etc"
    )
    assert status == 400
    status, body = await shared.call("POST", "/folder/snapshot/restore", **VF, snapshot_id="nope")
    assert status == 404 and body["code"] == "snapshot-not-found"


@pytest.mark.parametrize(
    ("user", "browse", "change"),
    [("alice", 200, 201), ("bob", 200, 403), ("carol", 200, 201), ("mallory", 404, 404)],
)
async def test_rights_on_the_file_api(
    shared: Daemon,  # noqa: F811
    user: str,
    browse: int,
    change: int,
) -> None:
    d = shared
    status, _ = await snapshot(d, "s")
    assert status == 201
    snap = f"{BASE}/snapshots/s"
    assert await status_of(d, "GET", f"{BASE}/snapshots", user) == browse
    assert await status_of(d, "GET", f"{snap}/list?path=docs", user) == browse
    assert await status_of(d, "GET", f"{snap}/files/docs/readme.txt", user) == browse
    made = await status_of(d, "POST", f"{BASE}/snapshots", user, json={"name": f"by-{user}"})
    assert made == change
    restored = await status_of(d, "POST", f"{snap}/restore", user, json={"paths": ["docs"]})
    assert restored == (200 if change == 201 else change)
    deleted = await status_of(d, "DELETE", f"{BASE}/snapshots/by-{user}", user)
    assert deleted == (204 if change == 201 else change)


async def test_download_and_zip_of_a_snapshot(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await put(d, "docs/more/b.txt", b"bbb")
    assert (await snapshot(d, "s"))[0] == 201
    await put(d, "docs/readme.txt", b"changed")
    headers = token(d, "bob")  # RO is enough to read
    resp = await d.client.get(f"{BASE}/snapshots/s/files/docs/readme.txt", headers=headers)
    assert resp.status == 200 and await resp.read() == b"hello"
    ranged = {**headers, "Range": "bytes=1-3"}
    resp = await d.client.get(f"{BASE}/snapshots/s/files/docs/readme.txt", headers=ranged)
    assert resp.status == 206 and await resp.read() == b"ell"
    resp = await d.client.get(f"{BASE}/snapshots/s/files/docs", headers=headers)
    assert resp.status == 400  # a directory without archive=true
    resp = await d.client.get(f"{BASE}/snapshots/s/files/docs?archive=true", headers=headers)
    assert resp.status == 200
    names = zipfile.ZipFile(io.BytesIO(await resp.read())).namelist()
    assert sorted(names) == ["more/", "more/b.txt", "readme.txt"]
    resp = await d.client.get(f"{BASE}/snapshots/s/list?recursive=true", headers=headers)
    paths = sorted(f["path"] for f in (await resp.json())["files"])
    assert paths == ["docs", "docs/more", "docs/more/b.txt", "docs/readme.txt"]
    # a snapshot is read-only: the file API has no way to write into one
    resp = await d.client.put(f"{BASE}/snapshots/s/files/docs/x", data=b"x", headers=headers)
    assert resp.status in (404, 405)


async def test_not_supported_is_a_clear_problem(
    shared: Daemon,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without = VfsVolume.capabilities - {Capability.SNAPSHOT, Capability.SNAPSHOT_QUOTA}
    monkeypatch.setattr(VfsVolume, "capabilities", without)
    # the manager door answers as Backend.AI 26.9.6 does (400 unsupported-operation), the file
    # API with 501; both with our code
    status, body = await snapshot(shared, "s")
    assert status == 400 and body["code"] == "not-supported"
    status, body = await shared.call("GET", "/folder/snapshots", **VF)
    assert status == 200 and body["snapshots"] == []
    for route, extra in (("restore", {}), ("delete", {}), ("files", {"relpath": "."})):
        status, body = await shared.call(
            "POST", f"/folder/snapshot/{route}", **VF, snapshot_id="s", **extra
        )
        assert status == 400 and body["code"] == "not-supported", route
    for method, path in (("POST", ""), ("GET", "/s/list"), ("POST", "/s/restore")):
        assert await status_of(shared, method, f"{BASE}/snapshots{path}", "alice") == 501


@pytest.mark.hostile
async def test_no_way_into_the_snapshot_area_from_a_user_path(shared: Daemon) -> None:  # noqa: F811
    """Snapshots are kept outside the vfolder: neither ``..`` nor a symlink a tenant plants
    reaches them, and a snapshot's own symlinks do not lead out of it when it is read."""
    d = shared
    assert (await snapshot(d, "s"))[0] == 201
    root = vfolder_dir(d)
    area = root.parent.parent.parent / ".sp-snapshots"
    assert (area / root.name[-28:]).exists() or any(area.iterdir())
    os.symlink(str(area), root / "to-area")  # as a compute session could
    os.symlink("../../../.sp-snapshots", root / "rel-area")
    os.symlink("/etc/passwd", root / "passwd")
    for probe in (
        "to-area",
        "rel-area",
        "passwd",
        "../../../.sp-snapshots",
        "%2e%2e/%2e%2e/%2e%2e/.sp-snapshots",
    ):
        status, _ = await get(d, probe)
        assert status in (400, 404), probe
    assert (await snapshot(d, "t"))[0] == 201  # the links are in snapshot t now, as links
    headers = token(d, "alice")
    for probe in ("to-area/a", "passwd", "rel-area"):
        resp = await d.client.get(f"{BASE}/snapshots/t/files/{probe}", headers=headers)
        assert resp.status in (400, 404), probe
    for bad in ("../s", "..%2Fs"):
        resp = await d.client.get(f"{BASE}/snapshots/{bad}/list", headers=headers)
        assert resp.status in (400, 404), bad


@pytest.mark.hostile
async def test_a_restore_cannot_write_outside_the_vfolder(
    shared: Daemon,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A directory of the vfolder swapped for a symlink out of it after the snapshot: the
    restore refuses (or writes inside), never follows the link."""
    d = shared
    await put(d, "docs/secret.txt", b"snap")
    assert (await snapshot(d, "s"))[0] == 201
    outside = tmp_path / "outside"
    outside.mkdir()
    root = vfolder_dir(d)
    import shutil

    shutil.rmtree(root / "docs")
    os.symlink(str(outside), root / "docs")
    status, body = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="s", into="docs/x"
    )
    assert status == 400 and body["code"] == "invalid-path", body
    for relpaths in (["docs/secret.txt"], ["docs"]):
        status, body = await d.call(
            "POST", "/folder/snapshot/restore", **VF, snapshot_id="s", relpaths=relpaths
        )
        assert status == 400 and body["code"] == "invalid-path", body
        assert list(outside.iterdir()) == []
    # the whole vfolder: the link is replaced by the directory the snapshot holds
    status, body = await d.call("POST", "/folder/snapshot/restore", **VF, snapshot_id="s")
    assert status == 200, body
    assert list(outside.iterdir()) == []
    assert not (root / "docs").is_symlink()
    assert (await get(d, "docs/secret.txt"))[1] == b"snap"
