"""tus concatenation: partial uploads PATCHed in parallel, joined by a final upload."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Daemon

from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID
from storage_proxy.volumes import fstree
from storage_proxy.volumes.fstree import join_files

QSID = "user:11111111-2222-3333-4444-555555555555"
VFID = f"{QSID}/aabbccdd000040008000000000000001"
TUS = {"Tus-Resumable": "1.0.0"}


async def setup(daemon: Daemon) -> tuple[Path, dict[str, str]]:
    """A vfolder owned by alice; her bearer headers."""
    status, _ = await daemon.call("POST", "/folder/create", volume="vol1", vfid=VFID)
    assert status == 204
    await daemon.call(
        "PUT", "/folder/acl", volume="vol1", vfid=VFID, owner="alice", kind="user", entries=[]
    )
    _, mount = await daemon.call("GET", "/folder/mount", volume="vol1", vfid=VFID)
    token = daemon.ctx.tokens.issue_user("alice", [], daemon.ctx.tokens.session_lifetime)
    return Path(mount["path"]), {**TUS, "Authorization": f"Bearer {token}"}


def metadata(path: str, vfid: str = VFID) -> str:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    return f"volume {b64('vol1')},vfid {b64(vfid)},path {b64(path)}"


async def create(daemon: Daemon, auth: dict[str, str], **headers: str) -> Any:
    return await daemon.client.post("/upload", headers={**auth, **headers})


async def partial(daemon: Daemon, auth: dict[str, str], size: int, path: str = "p.bin") -> str:
    resp = await create(
        daemon, auth, **{"Upload-Concat": "partial", "Upload-Length": str(size)},
        **{"Upload-Metadata": metadata(path)},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    return str(resp.headers["Location"])


async def send(daemon: Daemon, auth: dict[str, str], url: str, offset: int, data: bytes) -> Any:
    headers = {
        **auth,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": str(offset),
    }
    return await daemon.client.patch(url, data=data, headers=headers)


async def final(daemon: Daemon, auth: dict[str, str], urls: list[str], path: str) -> Any:
    concat = "final;" + " ".join(urls)
    return await create(
        daemon, auth, **{"Upload-Concat": concat}, **{"Upload-Metadata": metadata(path)}
    )


async def test_options_advertise_concatenation(daemon: Daemon) -> None:
    resp = await daemon.client.options("/upload")
    assert "concatenation" in resp.headers["Tus-Extension"].split(",")


async def test_partials_in_parallel_joined_by_the_final(daemon: Daemon) -> None:
    root, auth = await setup(daemon)
    pieces = [os.urandom(1 << 20), os.urandom(1 << 20), os.urandom(1000)]
    urls = [await partial(daemon, auth, len(p)) for p in pieces]
    head = await daemon.client.head(urls[0], headers=auth)
    assert head.headers["Upload-Concat"] == "partial"
    answers = await asyncio.gather(
        *(send(daemon, auth, u, 0, p) for u, p in zip(urls, pieces, strict=True))
    )
    assert [a.status for a in answers] == [204, 204, 204]
    assert (root / "p.bin").exists() is False  # a complete partial is not published
    resp = await final(daemon, auth, urls, "joined/out.bin")
    assert resp.status == 201, await resp.text()
    total = sum(map(len, pieces))
    assert resp.headers["Upload-Length"] == str(total)
    assert (root / "joined" / "out.bin").read_bytes() == b"".join(pieces)
    stored = await daemon.ctx.volumes.get("vol1").get_file_meta(
        VFolderID.parse(VFID), RelPath.parse("joined/out.bin")
    )
    assert stored.sha256 == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert stored.md5 == hashlib.md5(b"".join(pieces)).hexdigest()
    head = await daemon.client.head(resp.headers["Location"], headers=auth)
    assert head.status == 200
    assert head.headers["Upload-Concat"] == "final;" + " ".join(urls)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == str(total)
    resp = await send(daemon, auth, resp.headers["Location"], total, b"x")
    assert (resp.status, (await resp.json())["code"]) == (403, "upload-final-immutable")
    for url in urls:  # released: gone, their staged bytes removed, their quota handed back
        assert (await daemon.client.head(url, headers=auth)).status == 404
        resp = await send(daemon, auth, url, len(pieces[0]), b"x")
        assert resp.status == 404
    staged = daemon.ctx.volumes.get("vol1").mount_path / ".uploads"
    assert list(staged.iterdir()) == []
    assert await daemon.ctx.metadata.reserved_upload_bytes("vol1", QSID) == 0


async def test_an_unfinished_partial_is_refused_and_kept(daemon: Daemon) -> None:
    root, auth = await setup(daemon)
    a, b = await partial(daemon, auth, 10), await partial(daemon, auth, 10)
    assert (await send(daemon, auth, a, 0, b"0123456789")).status == 204
    assert (await send(daemon, auth, b, 0, b"abcde")).status == 204
    resp = await final(daemon, auth, [a, b], "out.bin")
    assert (resp.status, (await resp.json())["code"]) == (400, "upload-partial-incomplete")
    assert not (root / "out.bin").exists()
    assert (await send(daemon, auth, b, 5, b"fghij")).status == 204  # still usable
    resp = await final(daemon, auth, [a, b], "out.bin")
    assert resp.status == 201
    assert (root / "out.bin").read_bytes() == b"0123456789abcdefghij"


@pytest.mark.parametrize(
    "concat",
    ["final;", "final", "partial;x", "final;/upload/xyz", "final;/files/" + "a" * 32, "Partial"],
)
async def test_malformed_upload_concat_is_400(daemon: Daemon, concat: str) -> None:
    _, auth = await setup(daemon)
    resp = await create(daemon, auth, **{"Upload-Concat": concat, "Upload-Length": "3"})
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid-upload-concat")


async def test_final_rules(daemon: Daemon) -> None:
    _, auth = await setup(daemon)
    a = await partial(daemon, auth, 3)
    await send(daemon, auth, a, 0, b"abc")
    meta = {"Upload-Metadata": metadata("x.bin")}
    with_length = {"Upload-Concat": f"final;{a}", "Upload-Length": "3", **meta}
    resp = await create(daemon, auth, **with_length)
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid-upload-concat")
    resp = await final(daemon, auth, [a, a], "x.bin")
    assert (resp.status, (await resp.json())["code"]) == (400, "upload-concat-invalid")
    plain = await create(daemon, auth, **{"Upload-Length": "3", **meta})
    resp = await final(daemon, auth, [a, plain.headers["Location"]], "x.bin")
    assert (resp.status, (await resp.json())["code"]) == (400, "upload-concat-invalid")
    resp = await final(daemon, auth, [f"http://elsewhere.example{a}"], "../x.bin")
    assert resp.status == 400
    token_resp = await daemon.client.post(
        "/upload", params={"token": "x"}, headers={**TUS, "Upload-Concat": "partial"}
    )
    assert (token_resp.status, (await token_resp.json())["code"]) == (400, "invalid-upload-concat")


async def test_partials_count_against_the_quota(daemon: Daemon) -> None:
    root, auth = await setup(daemon)
    status, _ = await daemon.call(
        "PATCH", "/folder/quota", volume="vol1", vfid=VFID, limit_bytes=10_000
    )
    assert status == 204
    a = await partial(daemon, auth, 6_000)
    resp = await create(
        daemon, auth, **{"Upload-Concat": "partial", "Upload-Length": "6000"},
        **{"Upload-Metadata": metadata("p.bin")},
    )  # fmt: skip
    assert (resp.status, (await resp.json())["code"]) == (413, "quota-exceeded")
    b = await partial(daemon, auth, 3_000)
    await asyncio.gather(
        send(daemon, auth, a, 0, b"a" * 6_000), send(daemon, auth, b, 0, b"b" * 3_000)
    )
    assert (await final(daemon, auth, [a, b], "q.bin")).status == 201
    assert (root / "q.bin").stat().st_size == 9_000
    assert await daemon.ctx.metadata.reserved_upload_bytes("vol1", QSID) == 0
    assert (
        await create(
            daemon, auth, **{"Upload-Length": "1000", "Upload-Metadata": metadata("r.bin")}
        )
    ).status == 201
    resp = await create(
        daemon, auth, **{"Upload-Length": "1001", "Upload-Metadata": metadata("s.bin")}
    )
    assert resp.status == 413  # the joined file counts once: 9,000 + 1,000 reserved


async def test_a_partial_needs_the_right_to_write(daemon: Daemon) -> None:
    _, _auth = await setup(daemon)
    bob = daemon.ctx.tokens.issue_user("bob", [], daemon.ctx.tokens.session_lifetime)
    resp = await create(
        daemon, {**TUS, "Authorization": f"Bearer {bob}"},
        **{"Upload-Concat": "partial", "Upload-Length": "3", "Upload-Metadata": metadata("b")},
    )  # fmt: skip
    assert resp.status in (403, 404)
    assert (await resp.json())["code"]


# -- the join, in the volume layer -------------------------------------------------------------
def _files(tmp_path: Path, sizes: list[int]) -> tuple[list[bytes], list[int], int]:
    datas = [os.urandom(n) for n in sizes]
    fds = []
    for i, data in enumerate(datas):
        p = tmp_path / f"part{i}"
        p.write_bytes(data)
        fds.append(os.open(p, os.O_RDONLY))
    return datas, fds, os.open(tmp_path / "joined", os.O_RDWR | os.O_CREAT, 0o600)


@pytest.mark.parametrize("refused", [None, "clone", "kernel"])
def test_join_files_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str | None
) -> None:
    """Shared blocks, the kernel's copy, a plain copy: one result, whichever is refused."""

    def refuse(*_: Any) -> Any:
        raise OSError(errno.EXDEV, "refused")

    if refused in ("clone", "kernel"):
        monkeypatch.setattr(fstree, "clone_range", lambda *a: False)
    if refused == "kernel":
        monkeypatch.setattr(os, "copy_file_range", refuse)
    datas, fds, dst = _files(tmp_path, [1 << 20, 0, 4096 * 3, 777])
    try:
        report = join_files(dst, fds)
    finally:
        for fd in (*fds, dst):
            os.close(fd)
    assert (tmp_path / "joined").read_bytes() == b"".join(datas)
    assert report.size == sum(map(len, datas))
    assert report.cloned + report.kernel_copied + report.copied == report.size
    if refused == "kernel":
        assert report.copied == report.size


def test_digests_of_a_large_file_in_threads_match(tmp_path: Path) -> None:
    """A joined file is hashed when published: sha256 and md5 each in a thread of its own."""
    data = os.urandom(fstree._PARALLEL_HASH + 12345)
    (tmp_path / "big").write_bytes(data)
    fd = os.open(tmp_path / "big", os.O_RDONLY)
    try:
        assert fstree.hash_fd(fd, "sha256", "md5") == [
            hashlib.sha256(data).hexdigest(),
            hashlib.md5(data).hexdigest(),
        ]
    finally:
        os.close(fd)
