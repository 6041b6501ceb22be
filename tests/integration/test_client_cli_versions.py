"""``storage-proxy-client versions ls|get|restore`` and ``snapshots ls|get`` against the daemon."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from api_fixtures import Daemon
from client_cli import VFID, cli

VF = {"volume": "vol1", "vfid": VFID}


async def run(daemon: Daemon, tmp_path: Path, *args: str) -> tuple[int, str]:
    done = await cli(daemon, tmp_path, *args)
    return done.code, done.both


async def test_versions_and_snapshots_from_the_command_line(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.call("POST", "/folder/create", **VF, owner="alice")
    assert (await daemon.call("PUT", "/folder/versions", **VF, versions=3))[0] == 204
    headers = {
        "Authorization": f"Bearer {daemon.ctx.tokens.issue_user('alice', [], timedelta(hours=1))}"
    }
    for data in (b"first", b"second!", b"third"):
        resp = await daemon.client.put(
            f"/api/v1/vfolders/vol1/{VFID}/files/m/w.bin", data=data, headers=headers
        )
        assert resp.status == 201
    code, out = await run(daemon, tmp_path, "versions", "ls", "vol1", VFID, "/m/w.bin")
    assert code == 0, out
    rows = [line.split() for line in out.strip().splitlines()]
    assert [r[1] for r in rows] == ["7", "5"] and rows[0][4] == "user:alice"
    oldest = rows[1][0]
    local = tmp_path / "old.bin"
    code, out = await run(daemon, tmp_path, "versions", "get", "vol1", VFID, "m/w.bin", oldest,
                          str(local))  # fmt: skip
    assert code == 0 and "sha256 verified" in out, out
    assert local.read_bytes() == b"first"
    code, out = await run(daemon, tmp_path, "versions", "restore", "vol1", VFID, "m/w.bin", oldest)
    assert code == 0 and "restored, 5 bytes" in out, out
    code, out = await run(daemon, tmp_path, "versions", "get", "vol1", VFID, "m/w.bin", "nope",
                          str(tmp_path / "x"))  # fmt: skip
    assert code == 1 and "404" in out

    code, out = await run(daemon, tmp_path, "snapshots", "ls", "vol1", VFID)
    assert code == 0 and out.strip() == f"no snapshots (vol1 {VFID})"
    assert (await daemon.call("POST", "/folder/snapshot", **VF, name="s1"))[0] == 201
    code, out = await run(daemon, tmp_path, "snapshots", "ls", "vol1", VFID)
    assert code == 0 and out.split()[0] == "s1", out
    snap = tmp_path / "snap.bin"
    code, out = await run(daemon, tmp_path, "snapshots", "get", "vol1", VFID, "s1", "m/w.bin",
                          str(snap))  # fmt: skip
    assert code == 0 and snap.read_bytes() == b"first", out
