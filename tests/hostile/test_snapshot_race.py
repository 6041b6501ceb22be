"""Snapshots and versions under the symlink race: while the tenant swaps ``d`` (a real directory)
and ``s`` (a link out of the vfolder), snapshots are taken, browsed, zipped and restored from --
in place, by paths, into new directories --, files are overwritten keeping versions which are
listed, downloaded and restored, and ``.snap`` is probed.  No answer may carry an outside byte,
no restore may write outside, no snapshot or version may hold an outside file, nothing is 500."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import aiohttp
import pytest
from harness import OUTSIDE_MARK, Tenant
from test_symlink_race import Op, _read, _report, fileapi_zip, race

#: Snapshots by copies and restores are heavier than single reads: fewer requests per race.
MIN_REQUESTS = {"vfs": 150, "cephfs": 60}


def _formatted(value: object, i: int) -> object:
    if isinstance(value, dict):
        return {k: (v.format(i=i) if isinstance(v, str) else v) for k, v in value.items()}
    return value


def _snap(path: str, method: str = "get", **kw: object) -> Op:
    async def call(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
        url = f"{t.files_url}/snapshots{path.format(i=i)}"
        extra = {k: _formatted(v, i) for k, v in kw.items()}
        async with s.request(method, url, headers=t.auth, **extra) as r:  # type: ignore[arg-type]
            return await _read(r)

    return call


def _restore(body: dict[str, object]) -> Op:
    async def call(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
        payload = {k: (v.format(i=i) if isinstance(v, str) else v) for k, v in body.items()}
        url = f"{t.files_url}/snapshots/base/restore"
        async with s.post(url, json=payload, headers=t.auth) as r:
            return await _read(r)

    return call


async def snapshot_zip(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    class Shifted:  # the zip op of the symlink race, on the snapshot's tree
        files_url = f"{t.files_url}/snapshots/base"
        auth = t.auth

    return await fileapi_zip(s, Shifted, i)  # type: ignore[arg-type]


async def snapdir(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    path = ("d/.snap", ".snap/base/d/secret.txt", "s/.snap", "d/.snap/x/secret.txt")[i % 4]
    async with s.get(f"{t.files_url}/files/{path}", headers=t.auth) as r:
        return await _read(r)


async def overwrite(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    url = f"{t.files_url}/files/d/victim-{i % 64}"
    async with s.put(url, data=b"overwritten %d" % i, headers=t.auth) as r:
        return await _read(r)


async def version_round(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    """List a file's versions, then download or restore the newest (whatever d is by then)."""
    name = f"d/victim-{i % 64}"
    async with s.get(f"{t.files_url}/versions/{name}", headers=t.auth) as r:
        status, body = await _read(r)
    if status != 200 or b'"version_id"' not in body:
        return status, body
    vid = json.loads(body)["versions"][0]["version_id"]
    url = f"{t.files_url}/version/{vid}/{name}"
    method = s.post if i % 2 else s.get
    async with method(url, headers=t.auth) as r:
        return await _read(r)


SNAPSHOT_OPS: dict[str, Op] = {
    "overwrite-keeping": overwrite,
    "version-round": version_round,
    "snapshot-take": _snap("", "post", json={"name": "t{i}"}),
    "snapshot-read": _snap("/base/files/d/secret.txt"),
    "snapshot-read-link": _snap("/base/files/s/secret.txt"),
    "snapshot-list": _snap("/base/list?path=d&recursive=true"),
    "snapshot-zip": snapshot_zip,
    "restore-file": _restore({"paths": ["d/secret.txt"]}),
    "restore-dir": _restore({"paths": ["d/sub"]}),  # d itself stays (the swapper needs it)
    "restore-into": _restore({"paths": ["d"], "into": "r-{i}"}),
    "restore-into-d": _restore({"paths": ["d/sub"], "into": "d/r-{i}"}),
    "snapdir-probe": snapdir,
}


def _regular_files(top: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, filenames in os.walk(top, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return found


@pytest.mark.hostile
async def test_snapshots_never_leave_the_vfolder(tenant: Tenant) -> None:
    def base_snapshot() -> None:
        taken = tenant.manager("POST", "/folder/snapshot", {"name": "base"})
        assert taken.status == 201, taken
        kept = tenant.manager("PUT", "/folder/versions", {"versions": 3})
        assert kept.status == 204, kept

    seconds = 8.0 if tenant.backend == "cephfs" else 4.0  # ceph-fuse swaps slower
    findings = await race(
        tenant, SNAPSHOT_OPS, seconds, base_snapshot, goal=MIN_REQUESTS[tenant.backend]
    )
    assert not findings.leaks, _report(findings)
    assert findings.requests >= MIN_REQUESTS[tenant.backend], _report(findings)
    ok = sum(n for status, n in findings.status.items() if status < 300)
    assert ok > findings.requests // 20, _report(findings)
    # no snapshot holds an outside file (links are kept as links, never followed)
    listed = tenant.manager("GET", "/folder/snapshots")
    assert listed.status == 200 and len(listed.json()["snapshots"]) > 1
    for snap in listed.json()["snapshots"]:
        files = tenant.manager(
            "POST",
            "/folder/snapshot/files",
            {"snapshot_id": snap["snapshot_id"], "relpath": ".", "recursive": True},
        )
        assert files.status == 200, files
    scope = tenant.mount.parent.parent.parent
    areas = [scope / ".sp-snapshots", tenant.mount / ".snap", scope / ".sp-versions"]
    assert any((scope / ".sp-versions").rglob("*-*")), "no version was kept"
    for area in areas:
        if area.exists():
            for path in _regular_files(area):
                assert OUTSIDE_MARK not in path.read_bytes(), path
