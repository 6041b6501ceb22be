"""A manager hands out a download link of a file *version*: ``POST /folder/file/download`` with
``version_id`` mints the token, ``GET /download?token=…`` on the client API serves that version
(ranges included) after the same checks as any download; an unknown or malformed version, a
version asked as an archive, or a path out of the vfolder is refused when the token is minted."""

from __future__ import annotations

import pytest
from api_fixtures import Daemon
from test_file_api import VFID, shared  # noqa: F401
from test_snapshots_api import audited
from test_versions_api import VF, keep, put, versions_of


async def _mint(d: Daemon, **extra: object) -> tuple[int, dict[str, str]]:
    return await d.call("POST", "/folder/file/download", **VF, **extra)  # type: ignore[return-value]


@pytest.fixture
async def versioned(shared: Daemon) -> str:  # noqa: F811
    """``f.txt`` is ``now`` and keeps ``then`` as a version; the version's id."""
    await keep(shared, 3)
    assert await put(shared, "f.txt", b"then") == 201
    assert await put(shared, "f.txt", b"now!") == 201
    kept = await versions_of(shared, "f.txt")
    assert len(kept) == 1
    return kept[0]["version_id"]  # type: ignore[no-any-return]


async def test_a_version_through_a_download_token(shared: Daemon, versioned: str) -> None:  # noqa: F811
    d = shared
    status, body = await _mint(d, relpath="f.txt", version_id=versioned)
    assert status == 200, body
    resp = await d.client.get("/download", params={"token": body["token"]})
    assert resp.status == 200 and await resp.read() == b"then"
    assert "f.txt" in resp.headers["Content-Disposition"]
    resp = await d.client.get(
        "/download", params={"token": body["token"]}, headers={"Range": "bytes=1-2"}
    )
    assert resp.status == 206 and await resp.read() == b"he"
    await audited(d, "version.download")

    # without version_id the same route still gives the current file
    status, body = await _mint(d, relpath="f.txt")
    resp = await d.client.get("/download", params={"token": body["token"]})
    assert resp.status == 200 and await resp.read() == b"now!"


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"relpath": "f.txt", "version_id": "ffff-0000"}, 404, "version-not-found"),
        ({"relpath": "f.txt", "version_id": "../../etc/passwd"}, 400, "invalid-parameter"),
        ({"relpath": "../f.txt", "version_id": "x"}, 400, None),
        ({"relpath": "nope.txt", "version_id": "x"}, 404, None),
        ({"relpath": "f.txt", "version_id": "x", "archive": True}, 400, "invalid-parameter"),
    ],
)
async def test_bad_version_tokens_are_refused_when_minted(
    shared: Daemon,  # noqa: F811
    versioned: str,
    extra: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    got, body = await _mint(shared, **extra)
    assert got == status, body
    if code is not None:
        assert body["code"] == code


async def test_a_version_token_is_checked_when_redeemed(shared: Daemon, versioned: str) -> None:  # noqa: F811
    d = shared
    status, body = await _mint(d, relpath="f.txt", version_id=versioned)
    assert status == 200
    # a version is one file, never an archive
    resp = await d.client.get("/download", params={"token": body["token"], "archive": "true"})
    assert resp.status == 400 and (await resp.json())["code"] == "invalid-parameter"
    # the version goes before the client comes: a 404 problem, not a 500
    status, _ = await d.call(
        "POST", "/folder/file/version/delete", **VF, relpath="f.txt", version_id=versioned
    )
    assert status == 204
    resp = await d.client.get("/download", params={"token": body["token"]})
    assert resp.status == 404 and (await resp.json())["code"] == "version-not-found"
