"""A batch upload is a tenant's archive unpacked by the daemon: every member name that escapes
(``..``, absolute, through a link the tenant planted) and every member that is a link or a
device must be refused for itself, nothing outside the vfolder may change, and a malformed or
truncated stream ends the batch cleanly (never a 500)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import aiohttp
import pytest
from harness import OUTSIDE_MARK, Tenant

TAR = {"Content-Type": "application/x-tar"}


def member(tar: tarfile.TarFile, name: str, content: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    for key, value in kw.items():
        setattr(info, key, value)
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    else:
        tar.addfile(info)


def outside_world(tenant: Tenant) -> Path:
    outside = tenant.mount.parent / f"batch-outside-{tenant.mount.name}"
    outside.mkdir()
    (outside / "loot.txt").write_bytes(OUTSIDE_MARK)
    (tenant.mount / "evil").symlink_to(outside)
    return outside


def state(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else (
                p.read_bytes() if p.is_file() else "dir"
            )  # fmt: skip
    return out


async def post(tenant: Tenant, body: object, headers: dict[str, str] | None = None) -> object:
    async with aiohttp.ClientSession() as session:
        sent = {**tenant.auth, **(TAR if headers is None else headers)}
        async with session.post(f"{tenant.files_url}/batch", data=body, headers=sent) as resp:
            assert resp.status == 200, (resp.status, await resp.text())
            return await resp.json()


@pytest.mark.hostile
async def test_hostile_member_names_and_kinds_are_refused_one_by_one(tenant: Tenant) -> None:
    outside = outside_world(tenant)
    before = state(outside)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member(tar, "ok.txt", b"ok")
        member(tar, "../escape.txt", OUTSIDE_MARK)
        member(tar, "/abs.txt", OUTSIDE_MARK)
        member(tar, "a/../../b.txt", OUTSIDE_MARK)
        member(tar, "evil/loot.txt", b"overwritten")  # through the planted link
        member(tar, "evil/new.txt", b"planted")
        member(tar, "lnk", type=tarfile.SYMTYPE, linkname="/etc")
        member(tar, "lnk/passwd", b"inside")  # lnk was not made a link: a plain directory
        member(tar, "hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        member(tar, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        member(tar, "fifo", type=tarfile.FIFOTYPE)
        member(tar, "tail.txt", b"tail")
    out = await post(tenant, buf.getvalue())
    assert isinstance(out, dict)
    results = {r["name"]: r for r in out["results"]}
    stored = {name for name, r in results.items() if "error" not in r}
    assert stored == {"ok.txt", "lnk/passwd", "tail.txt"}, out
    assert out["stored"] == 3 and out["failed"] == 9 and out["aborted"] is None
    assert all(r["error"]["status"] < 500 for r in results.values() if "error" in r)
    assert state(outside) == before
    assert not (tenant.mount.parent / "escape.txt").exists()
    assert (tenant.mount / "lnk").is_dir() and not (tenant.mount / "lnk").is_symlink()
    links = [p for p in tenant.mount.rglob("*") if p.is_symlink()]
    assert links == [tenant.mount / "evil"]  # only the one planted
    for name in ("hard", "dev", "fifo"):
        assert not os.path.lexists(tenant.mount / name)
    assert (tenant.mount / "tail.txt").read_bytes() == b"tail"


@pytest.mark.hostile
async def test_a_form_cannot_escape_either(tenant: Tenant) -> None:
    outside = outside_world(tenant)
    before = state(outside)
    form = aiohttp.FormData(quote_fields=False)
    for name in ("../../x.txt", "evil/loot.txt", "/etc/x", "fine.txt"):
        form.add_field("file", OUTSIDE_MARK, filename=name)
    out = await post(tenant, form, headers={})
    assert isinstance(out, dict)
    assert [("error" in r) for r in out["results"]] == [True, True, False, False], out
    assert out["results"][2]["path"] == "etc/x"  # the form parser drops a leading "/": inside
    assert (tenant.mount / "etc" / "x").read_bytes() == OUTSIDE_MARK
    assert state(outside) == before


@pytest.mark.hostile
@pytest.mark.parametrize("damage", ["truncated-data", "truncated-header", "bad-checksum"])
async def test_a_broken_stream_ends_the_batch_cleanly(tenant: Tenant, damage: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        member(tar, "first.txt", b"1" * 100)
        member(tar, "second.txt", b"2" * 5000)
    data = buf.getvalue()
    if damage == "truncated-data":
        data = data[: 1024 + 512 + 1000]  # second's header and part of its data
    elif damage == "truncated-header":
        data = data[: 1024 + 200]
    else:
        data = data[:1024] + b"\xff" * 8 + data[1032:]  # second's name: checksum fails
    out = await post(tenant, data)
    assert isinstance(out, dict)
    assert out["stored"] == 1 and out["aborted"] is not None, out
    assert out["aborted"]["status"] == 400
    assert (tenant.mount / "first.txt").read_bytes() == b"1" * 100
    assert not (tenant.mount / "second.txt").exists()
    assert not [p for p in tenant.mount.rglob("*") if "second" in p.name]
