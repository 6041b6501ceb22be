"""Restores are writes: a tenant under a quota cannot multiply its data past the limit by
restoring a snapshot again and again, by restoring versions, or by restoring a sparse file a
compute session made (a copy fills its holes in).  And listing the versions of a huge file a
session wrote does not read it whole on the shared I/O pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from api_fixtures import Daemon

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the file API's fixture
from test_file_api import BASE, OWNER_QS, VFID, shared, token  # noqa: E402, F401
from test_snapshots_api import put, vfolder_dir  # noqa: E402

pytestmark = [pytest.mark.hostile, pytest.mark.usefixtures("shared")]
VF = {"volume": "vol1", "vfid": VFID}
LIMIT = 30_000


async def limit(d: Daemon, nbytes: int) -> None:
    status, _ = await d.call(
        "PATCH", "/quota-scope", volume="vol1", qsid=OWNER_QS, options={"limit_bytes": nbytes}
    )
    assert status == 204


async def used(d: Daemon) -> int:
    status, usage = await d.call("GET", "/quota-scope", volume="vol1", qsid=OWNER_QS)
    assert status == 200
    return int(usage["used_bytes"])


async def test_restoring_a_snapshot_again_and_again_stops_at_the_limit(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await put(d, "big.bin", os.urandom(8_000))
    await limit(d, LIMIT)
    status, made = await d.call("POST", "/folder/snapshot", **VF, name="s1")
    assert status == 201, made
    outcomes = []
    for n in range(6):
        status, body = await d.call(
            "POST", "/folder/snapshot/restore", **VF, snapshot_id="s1", into=f"copy{n}"
        )
        outcomes.append(body.get("code", status))
    # the vfolder (8 kB + hello), its snapshot, then copies of it while they fit
    assert outcomes.count("quota-exceeded") >= 3, outcomes
    assert await used(d) <= LIMIT
    refused = outcomes.index("quota-exceeded")
    assert not (vfolder_dir(d) / f"copy{refused}").exists()  # nothing copied for a refusal


async def test_an_in_place_restore_is_charged_only_what_it_adds(shared: Daemon) -> None:  # noqa: F811
    d = shared
    await put(d, "big.bin", os.urandom(8_000))
    await limit(d, 20_000)
    status, _ = await d.call("POST", "/folder/snapshot", **VF, name="s1")
    assert status == 201
    status, done = await d.call("POST", "/folder/snapshot/restore", **VF, snapshot_id="s1")
    assert status == 200, done  # replaces what is there: fits although a copy would not
    assert await used(d) <= 20_000


async def test_restoring_versions_stops_at_the_limit(shared: Daemon) -> None:  # noqa: F811
    d = shared
    status, _ = await d.call("PUT", "/folder/versions", **VF, versions=50)
    assert status == 204
    for n in range(2):
        await put(d, "f.bin", bytes([n]) * 6_000)
    await limit(d, LIMIT)
    status, listed = await d.call("POST", "/folder/file/versions", **VF, relpath="f.bin")
    vid = listed["versions"][0]["version_id"]
    statuses = []
    for _ in range(6):
        status, body = await d.call(
            "POST", "/folder/file/version/restore", **VF, relpath="f.bin", version_id=vid
        )
        statuses.append(status)
        if status == 200:
            vid = (await d.call("POST", "/folder/file/versions", **VF, relpath="f.bin"))[1][
                "versions"
            ][1]["version_id"]
    assert 413 in statuses, statuses
    assert await used(d) <= LIMIT


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


async def test_a_sparse_file_costs_its_length_when_restored(shared: Daemon) -> None:  # noqa: F811
    d = shared
    _sparse(vfolder_dir(d) / "holes.bin", 64 << 20)  # a compute session's file: 0 blocks
    status, _ = await d.call("POST", "/folder/snapshot", **VF, name="s1")
    assert status in (201, 413)
    await limit(d, 1 << 20)
    status, body = await d.call(
        "POST", "/folder/snapshot/restore", **VF, snapshot_id="s1", into="again"
    )
    assert status == 413 and body["code"] == "quota-exceeded", body
    assert not (vfolder_dir(d) / "again").exists()


async def test_listing_versions_of_a_huge_session_file_does_not_read_it(shared: Daemon) -> None:  # noqa: F811
    d = shared
    status, _ = await d.call("PUT", "/folder/versions", **VF, versions=5)
    assert status == 204
    big = vfolder_dir(d) / "huge.bin"
    _sparse(big, 1 << 40)  # 1 TiB of holes, no checksum recorded: a compute session wrote it
    await put(d, "huge.bin", b"small now")  # the huge one is kept as a version
    resp = await d.client.get(f"{BASE}/versions/huge.bin", headers=token(d, "alice"))
    assert resp.status == 200
    kept = (await resp.json())["versions"]
    assert kept[0]["size"] == 1 << 40 and kept[0]["sha256"] is None  # not hashed: not read
