"""A zip download whose subdirectory is swapped for a link to the outside while a slow client
reads: the archive must never contain what is outside (it once did, every time)."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile

import aiohttp
import pytest
from harness import OUTSIDE_MARK, Tenant, swap


@pytest.mark.hostile
async def test_zip_does_not_follow_a_directory_swapped_mid_stream(tenant: Tenant) -> None:
    outside = tenant.mount.parent / "zip-outside"
    outside.mkdir()
    (outside / "loot.txt").write_bytes(OUTSIDE_MARK)
    tree = tenant.mount / "tree"
    (tree / "zzz-sub").mkdir(parents=True)
    (tree / "zzz-sub" / "own.txt").write_bytes(b"own")
    (tree / "aaa-big.bin").write_bytes(os.urandom(24 << 20))  # streamed before zzz-sub
    (tenant.mount / "evil").symlink_to(outside)

    body = bytearray()
    url = f"{tenant.files_url}/files/tree"
    async with aiohttp.ClientSession(read_bufsize=1 << 16) as session:
        async with session.get(url, params={"archive": "true"}, headers=tenant.auth) as resp:
            assert resp.status == 200
            body += await resp.content.read(1 << 16)  # the stream has started
            swap(tree / "zzz-sub", tenant.mount / "evil")
            while chunk := await resp.content.read(1 << 16):
                body += chunk
                await asyncio.sleep(0)  # a slow reader
    archive = zipfile.ZipFile(io.BytesIO(bytes(body)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert "aaa-big.bin" in names
    assert not any("loot" in n for n in names), names
    assert all(OUTSIDE_MARK not in archive.read(n) for n in names if not n.endswith("/"))
    assert (outside / "loot.txt").read_bytes() == OUTSIDE_MARK


@pytest.mark.hostile
async def test_zip_skips_fifos_and_devices_without_stalling(tenant: Tenant) -> None:
    """A FIFO planted in the tree would block a reader that opened it: it is left out."""
    tree = tenant.mount / "fifo-tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    os.mkfifo(tree / "pipe")
    url = f"{tenant.files_url}/files/fifo-tree"
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url, params={"archive": "true"}, headers=tenant.auth) as resp:
            assert resp.status == 200
            archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
        assert archive.namelist() == ["a.txt"]
        async with session.get(
            f"{tenant.files_url}/files/fifo-tree/pipe", headers=tenant.auth
        ) as r:
            assert r.status == 400  # not a regular file: refused at once, never opened blocking
