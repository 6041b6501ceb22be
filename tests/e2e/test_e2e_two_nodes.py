"""Two daemons (two nodes) sharing one volume, one metadata store and one real Redis.

A vfolder made through node A is served by B; a tus upload started on A finishes on B; an ACL
change made on A is enforced on B at once; killing A mid-upload loses nothing it acknowledged.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from e2e_support import Daemon, StartDaemon, http, new_vfid
from redis_fixtures import RedisServer

pytestmark = pytest.mark.e2e

TUS = {"Tus-Resumable": "1.0.0"}


def patch(d: Daemon, token: str, offset: int, body: bytes) -> int:
    req = urllib.request.Request(
        f"{d.client_url}/upload?token={token}",
        data=body,
        method="PATCH",
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def head_offset(d: Daemon, token: str) -> int:
    r = http("HEAD", f"{d.client_url}/upload?token={token}", headers=TUS)
    assert r.status == 200, r.status
    return int(r.headers["Upload-Offset"])


def user_token(sub: str) -> str:
    exp = datetime.now(UTC) + timedelta(minutes=5)
    return jwt.encode({"sub": sub, "groups": [], "exp": exp}, SHARED_TOKEN_SECRET)


SHARED_TOKEN_SECRET = "two-nodes-token-secret-0123456789abcdef"


def test_two_nodes_share_one_truth(
    start_daemon_factory: StartDaemon, tmp_path: Path, redis_server: RedisServer
) -> None:
    volume = {"vol1": {"backend": "vfs", "path": tmp_path / "shared-vol"}}
    shared = (
        f'\n[metadata]\npath = "{tmp_path / "shared-meta.sqlite3"}"\n'
        f'\n[redis]\naddr = {{ host = "127.0.0.1", port = {redis_server.port} }}\n'
    )
    common = {"secret": SHARED_TOKEN_SECRET, "scan-workers": 0}
    a = start_daemon_factory(
        volumes=volume, storage_proxy=common, extra_config=shared, secret="two-nodes-manager-secret"
    )
    b = start_daemon_factory(
        volumes=volume, storage_proxy=common, extra_config=shared, secret="two-nodes-manager-secret"
    )

    # A vfolder created through A is served by B.
    vfid = new_vfid()
    assert (
        a.manager(
            "POST", "/folder/create", {"volume": "vol1", "vfid": vfid, "owner": "alice"}
        ).status
        == 204
    )
    assert b.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid}).status == 200

    # A tus upload started on A is finished on B.
    data = os.urandom(300_000)
    token = a.manager(
        "POST",
        "/folder/file/upload",
        {"volume": "vol1", "vfid": vfid, "relpath": "t.bin", "size": len(data)},
    ).json()["token"]
    assert patch(a, token, 0, data[:100_000]) == 204
    assert head_offset(b, token) == 100_000
    assert patch(b, token, 100_000, data[100_000:]) == 204
    mount = Path(b.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid}).json()["path"])
    assert (mount / "t.bin").read_bytes() == data

    # An ACL change made on A is enforced on B within a second.
    files = f"{b.client_url}/api/v1/vfolders/vol1/{vfid}/files"
    bob = {"Authorization": f"Bearer {user_token('bob')}"}
    assert http("GET", files, headers=bob).status == 404
    assert (
        a.manager(
            "POST",
            "/folder/acl/grant",
            {"volume": "vol1", "vfid": vfid, "principal": "user:bob", "permission": "ro"},
        ).status
        == 200
    )
    deadline = time.monotonic() + 1.0
    while http("GET", files, headers=bob).status != 200:
        assert time.monotonic() < deadline, "B did not see the ACL change within a second"
        time.sleep(0.05)

    # Killing A mid-upload loses nothing it acknowledged: B resumes from there.
    token = a.manager(
        "POST",
        "/folder/file/upload",
        {"volume": "vol1", "vfid": vfid, "relpath": "k.bin", "size": len(data)},
    ).json()["token"]
    assert patch(a, token, 0, data[:150_000]) == 204  # acknowledged
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    assert head_offset(b, token) == 150_000
    assert patch(b, token, 150_000, data[150_000:]) == 204
    assert (mount / "k.bin").read_bytes() == data
