"""tus concatenation against a hostile tenant: nobody joins another user's partial upload or a
partial of another vfolder, and a PATCH racing the final upload never corrupts the joined file."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

from api_fixtures import Daemon

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def _vfid(n: int) -> str:
    return f"user:11111111-2222-3333-4444-55555555555{n}/aabbccdd00004000800000000000000{n}"


async def _vfolder(daemon: Daemon, n: int, owner: str) -> tuple[str, Path]:
    vfid = _vfid(n)
    assert (await daemon.call("POST", "/folder/create", volume="vol1", vfid=vfid))[0] == 204
    await daemon.call(
        "PUT", "/folder/acl", volume="vol1", vfid=vfid, owner=owner, kind="user", entries=[]
    )
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=vfid)
    return vfid, Path(mount["path"])


def _auth(daemon: Daemon, user: str) -> dict[str, str]:
    token = daemon.ctx.tokens.issue_user(user, [], daemon.ctx.tokens.session_lifetime)
    return {**TUS, "Authorization": f"Bearer {token}"}


def _meta(vfid: str, path: str) -> str:
    enc = [base64.b64encode(v.encode()).decode() for v in ("vol1", vfid, path)]
    return f"volume {enc[0]},vfid {enc[1]},path {enc[2]}"


async def _partial(daemon: Daemon, auth: dict[str, str], vfid: str, data: bytes) -> str:
    headers = {**auth, "Upload-Concat": "partial", "Upload-Length": str(len(data))}
    resp = await daemon.client.post(
        "/upload", headers={**headers, "Upload-Metadata": _meta(vfid, "p")}
    )
    assert resp.status == 201, await resp.text()
    url = str(resp.headers["Location"])
    if data:
        assert (await _patch(daemon, auth, url, 0, data)).status == 204
    return url


async def _patch(daemon: Daemon, auth: dict[str, str], url: str, offset: int, data: bytes) -> Any:
    headers = {**auth, "Content-Type": OCTETS, "Upload-Offset": str(offset)}
    return await daemon.client.patch(url, data=data, headers=headers)


async def _final(
    daemon: Daemon, auth: dict[str, str], vfid: str, urls: list[str], path: str
) -> Any:
    headers = {
        **auth,
        "Upload-Concat": "final;" + " ".join(urls),
        "Upload-Metadata": _meta(vfid, path),
    }
    return await daemon.client.post("/upload", headers=headers)


async def _code(resp: Any) -> tuple[int, str]:
    return resp.status, (await resp.json())["code"]


async def test_no_one_joins_another_tenants_or_vfolders_partial(daemon: Daemon) -> None:
    alice_vfid, alice_root = await _vfolder(daemon, 1, "alice")
    other_vfid, _ = await _vfolder(daemon, 2, "alice")
    bob_vfid, bob_root = await _vfolder(daemon, 3, "bob")
    alice, bob = _auth(daemon, "alice"), _auth(daemon, "bob")
    mine = await _partial(daemon, alice, alice_vfid, b"alice's bytes")
    theirs = await _partial(daemon, bob, bob_vfid, b"bob's secret")
    elsewhere = await _partial(daemon, alice, other_vfid, b"other vfolder")
    # alice names bob's partial (relative and absolute URL): it does not exist for her
    for url in (theirs, f"http://attacker.example{theirs}"):
        resp = await _final(daemon, alice, alice_vfid, [mine, url], "stolen.bin")
        assert await _code(resp) == (404, "upload-not-found")
    # bob names alice's partial into his own vfolder: the same
    resp = await _final(daemon, bob, bob_vfid, [theirs, mine], "stolen.bin")
    assert await _code(resp) == (404, "upload-not-found")
    # bob cannot join into alice's vfolder at all, even his own partial
    resp = await _final(daemon, bob, alice_vfid, [theirs], "planted.bin")
    assert resp.status in (403, 404) and (await resp.json())["code"]
    # alice's partial of another vfolder is refused
    resp = await _final(daemon, alice, alice_vfid, [mine, elsewhere], "mixed.bin")
    assert await _code(resp) == (400, "upload-concat-invalid")
    # a manager-issued upload (no owner) is nobody's partial
    status, body = await daemon.call(
        "POST", "/folder/file/upload", volume="vol1", vfid=alice_vfid, relpath="m", size=3
    )
    assert status == 200
    [managed] = [s for s in await daemon.ctx.metadata.list_uploads() if s.owner is None]
    resp = await _final(daemon, alice, alice_vfid, [f"/upload/{managed.id}"], "m.bin")
    assert await _code(resp) == (404, "upload-not-found")
    # nothing leaked, every partial untouched and still its owner's
    assert list(alice_root.iterdir()) == [] and list(bob_root.iterdir()) == []
    for url, auth in ((mine, alice), (theirs, bob), (elsewhere, alice)):
        head = await daemon.client.head(url, headers=auth)
        assert head.status == 200 and head.headers["Upload-Concat"] == "partial"
    assert (await daemon.client.head(theirs, headers=alice)).status == 404
    resp = await _final(daemon, bob, bob_vfid, [theirs], "own.bin")
    assert resp.status == 201
    assert (bob_root / "own.bin").read_bytes() == b"bob's secret"


async def test_a_patch_racing_the_final_never_corrupts_it(daemon: Daemon) -> None:
    """Whoever wins — the PATCH of the last bytes of a partial, or the final upload joining it —
    the other gets a clean 4xx, and the joined file is exactly the parts, never a mix."""
    vfid, root = await _vfolder(daemon, 1, "alice")
    alice = _auth(daemon, "alice")
    outcomes: set[tuple[int, int]] = set()
    for i in range(8):
        head_part, tail = os.urandom(1 << 20), os.urandom(2 << 20)
        first = await _partial(daemon, alice, vfid, head_part)
        headers = {**alice, "Upload-Length": str(len(tail))}
        # the second partial declared with its length, filled while the final is asked for
        resp = await daemon.client.post(
            "/upload",
            headers={**headers, "Upload-Concat": "partial", "Upload-Metadata": _meta(vfid, "p")},
        )
        second = str(resp.headers["Location"])
        if i % 2:  # complete except the last byte, then both at once
            assert (await _patch(daemon, alice, second, 0, tail[:-1])).status == 204
            patching = _patch(daemon, alice, second, len(tail) - 1, tail[-1:])
        else:
            patching = _patch(daemon, alice, second, 0, tail)
        path = f"race{i}.bin"
        patched, joined = await asyncio.gather(
            patching, _final(daemon, alice, vfid, [first, second], path)
        )
        outcomes.add((patched.status, joined.status))
        assert patched.status in (204, 404, 409), await patched.text()
        assert joined.status in (201, 400, 409), await joined.text()
        if joined.status != 201:
            assert (await joined.json())["code"] in ("upload-partial-incomplete", "conflict")
            assert not (root / path).exists()
            if patched.status != 204:  # resend what the PATCH could not store
                offset = int(
                    (await daemon.client.head(second, headers=alice)).headers["Upload-Offset"]
                )
                assert (await _patch(daemon, alice, second, offset, tail[offset:])).status == 204
            assert (await _final(daemon, alice, vfid, [first, second], path)).status == 201
        assert (root / path).read_bytes() == head_part + tail
    assert await daemon.ctx.metadata.reserved_upload_bytes("vol1", vfid.split("/")[0]) == 0
    print("race outcomes (patch, final):", sorted(outcomes))
