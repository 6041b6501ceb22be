"""``storage-proxy-client ls`` says so when there is nothing to list, and ``/`` is the root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from api_fixtures import Daemon
from client_cli import VFID, cli


async def ls(daemon: Daemon, tmp_path: Path, *args: str) -> tuple[int, str]:
    run = await cli(daemon, tmp_path, "ls", "vol1", VFID, *args, quiet=False)
    return run.code, run.both


async def test_ls_of_empty_and_root(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID, owner="alice")
    for args in ((), ("/",)):
        code, out = await ls(daemon, tmp_path, *args)
        assert code == 0 and out.strip() == f"no files in this vfolder (vol1 {VFID})", out
    token = daemon.ctx.tokens.issue_user("alice", [], timedelta(hours=1))
    resp = await daemon.client.put(
        f"/api/v1/vfolders/vol1/{VFID}/files/models/m.bin",
        data=b"12345",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 201
    code, out = await ls(daemon, tmp_path, "/")
    assert code == 0 and "models/m.bin" in out and "5" in out
    code, out = await ls(daemon, tmp_path, "data/")  # no such directory: an error, said so
    assert code == 1 and "404 file-not-found" in out
    status, _ = await daemon.call(
        "POST", "/folder/file/mkdir", volume="vol1", vfid=VFID, relpath="data"
    )
    assert status == 200
    code, out = await ls(daemon, tmp_path, "data/")  # an empty directory
    assert code == 0 and out.strip() == f"no files below 'data/' (vol1 {VFID})"
