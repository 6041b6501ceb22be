"""Many files in one request (``POST /api/v1/…/batch``): a tar stream or a multipart form, each
file stored as a single upload would be, with a result for each."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from api_fixtures import Daemon
from test_file_api import BASE, OWNER_QS, token
from test_file_api import shared as shared  # the fixture

from storage_proxy.core.errors import Conflict
from storage_proxy.core.files import WholeFile
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import FileMeta
from storage_proxy.services.batch import GROUP_FILES, _Groups
from storage_proxy.services.tarstream import TarStream

TAR = {"Content-Type": "application/x-tar"}


def make_tar(members: list[tuple[str, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """``(name, content)``; content None: a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


async def post_batch(daemon: Daemon, body: Any, user: str = "alice", **kw: Any) -> Any:
    headers = {**token(daemon, user), **kw.pop("headers", TAR)}
    return await daemon.client.post(f"{BASE}/batch", data=body, headers=headers, **kw)


async def read(daemon: Daemon, path: str) -> tuple[int, bytes]:
    resp = await daemon.client.get(f"{BASE}/files/{path}", headers=token(daemon, "alice"))
    return resp.status, await resp.read()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
async def test_a_tar_stream_is_stored_file_by_file(shared: Daemon, fmt: int) -> None:
    long = "deep/" + "n" * 120 + ".txt"  # beyond ustar's 100-byte name: a pax or GNU record
    if fmt == tarfile.USTAR_FORMAT:
        long = "deep/" + "n" * 90 + ".txt"
    files = {f"set/img-{i:03d}.bin": bytes([i]) * (i * 37) for i in range(40)}
    members: list[tuple[str, bytes | None]] = [("set", None), *files.items(), (long, b"L")]
    resp = await post_batch(shared, make_tar(members, fmt))
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["stored"] == len(members) and out["failed"] == 0 and out["aborted"] is None
    assert [r["name"] for r in out["results"]] == [m[0] for m in members]
    by_path = {r["path"]: r for r in out["results"]}
    assert by_path["set"]["type"] == "directory"
    for name, content in files.items():
        assert by_path[name]["size"] == len(content)
        assert by_path[name]["sha256"] == hashlib.sha256(content).hexdigest()
        assert await read(shared, name) == (200, content)
    assert await read(shared, long) == (200, b"L")


async def test_a_form_with_many_files_lands_below_path(shared: Daemon) -> None:
    form = aiohttp.FormData(quote_fields=False)  # a filename is a path, sent as it is
    form.add_field("note", "not a file: skipped")
    for i in range(5):
        form.add_field("file", f"content {i}".encode(), filename=f"sub/f{i}.txt")
    resp = await post_batch(shared, form, headers={}, params={"path": "inbox"})
    out = await resp.json()
    assert resp.status == 200 and out["stored"] == 5, out
    assert [r["path"] for r in out["results"]] == [f"inbox/sub/f{i}.txt" for i in range(5)]
    assert await read(shared, "inbox/sub/f3.txt") == (200, b"content 3")


async def test_each_item_is_refused_alone_and_the_rest_is_stored(shared: Daemon) -> None:
    await shared.call(
        "PATCH", "/quota-scope", volume="vol1", qsid=OWNER_QS, options={"limit_bytes": 50_000}
    )
    members: list[tuple[str, bytes | None]] = [
        ("a.txt", b"a"),
        ("docs/readme.txt", b"replaced?"),  # exists: refused with overwrite=false
        ("big.bin", b"z" * 60_000),  # over the quota
        ("b.txt", b"b"),
    ]
    resp = await post_batch(shared, make_tar(members), params={"overwrite": "false"})
    out = await resp.json()
    assert out["stored"] == 2 and out["failed"] == 2, out
    codes = [r.get("error", {}).get("code") for r in out["results"]]
    assert codes == [None, "file-exists", "quota-exceeded", None]
    assert await read(shared, "docs/readme.txt") == (200, b"hello")
    assert (await read(shared, "big.bin"))[0] == 404
    assert await read(shared, "b.txt") == (200, b"b")


@pytest.mark.parametrize(("user", "status"), [("bob", 403), ("mallory", 404)])
async def test_a_caller_without_rw_is_refused_before_the_body(
    shared: Daemon, user: str, status: int
) -> None:
    resp = await post_batch(shared, make_tar([("x.txt", b"x")]), user=user)
    assert resp.status == status
    assert (await read(shared, "x.txt"))[0] == 404


async def test_the_same_name_twice_ends_with_the_later_content(shared: Daemon) -> None:
    members: list[tuple[str, bytes | None]] = [("same.txt", b"first"), ("x", b"x")]
    members += [("./same.txt", b"second"), ("big.bin", b"b" * (3 << 20)), ("same.txt", b"third")]
    resp = await post_batch(shared, make_tar(members))
    out = await resp.json()
    assert out["stored"] == 5, out
    assert await read(shared, "same.txt") == (200, b"third")
    assert await read(shared, "big.bin") == (200, b"b" * (3 << 20))  # streamed, not buffered


async def test_other_media_types_are_415(shared: Daemon) -> None:
    resp = await post_batch(shared, b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 415


async def test_tar_stream_reads_members_in_small_pieces() -> None:
    data = make_tar([("d", None), ("d/x", b"x" * 5000), ("y", b"")])
    pos = 0

    async def read_exactly(n: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + n]
        pos += len(out)
        return out

    stream = TarStream(read_exactly, chunk_size=1000)
    seen = []
    async for member in stream:
        content = b"".join([c async for c in stream.data()]) if member.kind == "file" else None
        seen.append((member.name, member.kind, content))
    assert seen == [("d", "directory", None), ("d/x", "file", b"x" * 5000), ("y", "file", b"")]


async def test_many_groups_keep_order_and_each_result(shared: Daemon) -> None:
    """More files than one stored group holds: results stay in order, the same name in three
    groups ends with the last body, a refused name in the middle is refused alone."""
    count = GROUP_FILES * 2 + 50
    members: list[tuple[str, bytes | None]] = [
        (f"many/f{i:04d}.bin", i.to_bytes(4, "big")) for i in range(count)
    ]
    members[10] = ("many/dup.txt", b"one")
    members[GROUP_FILES + 3] = ("many/dup.txt", b"two")
    members[GROUP_FILES + 4] = ("many/../../escape.txt", b"no")
    members[-1] = ("many/dup.txt", b"three")
    resp = await post_batch(shared, make_tar(members))
    out = await resp.json()
    assert resp.status == 200 and out["failed"] == 1 and out["stored"] == count - 1, out["failed"]
    assert [r["name"] for r in out["results"]] == [m[0] for m in members]
    assert out["results"][GROUP_FILES + 4]["error"]["status"] in (400, 403)
    assert await read(shared, "many/dup.txt") == (200, b"three")
    assert await read(shared, "many/f0100.bin") == (200, (100).to_bytes(4, "big"))


async def test_a_group_refused_as_a_whole_is_each_files_refusal() -> None:
    """A right revoked or a vfolder made busy mid-batch refuses a group at once: each file of it
    gets that refusal as its own result (as it would alone), and the next group is tried."""
    calls: list[int] = []

    async def store(files: list[WholeFile]) -> list[Any]:
        calls.append(len(files))
        if len(calls) == 1:
            raise Conflict("the vfolder is being deleted")
        return [FileMeta(size=len(f.body), modified=datetime.now(UTC)) for f in files]

    slots: list[dict[str, Any] | None] = [None] * (GROUP_FILES + 1)
    groups = _Groups(store, slots, None)
    for i in range(GROUP_FILES + 1):
        await groups.add(i, f"f{i}", WholeFile(RelPath.parse(f"f{i}"), b"x"))
    await groups.drain()
    assert calls == [GROUP_FILES, 1]
    assert all(s is not None and s["error"]["code"] == "conflict" for s in slots[:GROUP_FILES])
    assert slots[-1] == {"name": f"f{GROUP_FILES}", "path": f"f{GROUP_FILES}", "type": "file",
                         "size": 1}  # fmt: skip


async def test_a_file_and_a_directory_of_one_name_meet_in_order(shared: Daemon) -> None:
    """Sent as ``clash`` (a file) at the end of one group and ``clash/inner`` at the start of
    the next: the file lands first, so the later path through it is refused, as sent alone."""
    members: list[tuple[str, bytes | None]] = [(f"fill/a{i}", b"a") for i in range(GROUP_FILES)]
    members[-1] = ("clash", b"file")  # the last of the first group
    members += [("clash/inner", b"no")] + [(f"fill/b{i}", b"b") for i in range(GROUP_FILES)]
    resp = await post_batch(shared, make_tar(members))
    out = await resp.json()
    assert out["failed"] == 1 and out["results"][GROUP_FILES]["name"] == "clash/inner", out[
        "failed"
    ]
    assert await read(shared, "clash") == (200, b"file")
