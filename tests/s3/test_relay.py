"""Large downloads from an s3 volume spliced from RGW's socket to the client's, on the real RGW:
exact bytes for whole files and ranges, the plain stream for small reads and with the relay off,
and a client that hangs up or stalls mid-relay costs nothing (no error, no thread, no socket)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from api_fixtures import Daemon

from storage_proxy.api.keys import RELAYS

MiB = 1 << 20
SIZE = 9 * MiB + 13


async def stored(d: Daemon, data: bytes) -> str:
    """A vfolder on the s3 volume holding ``f.bin``; a download token for it."""
    vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
    status, _ = await d.call("POST", "/folder/create", volume="s3vol", vfid=vfid)
    assert status == 204
    body = {"volume": "s3vol", "vfid": vfid, "relpath": "f.bin"}
    status, tok = await d.call("POST", "/folder/file/upload", size=len(data), **body)
    resp = await d.client.put(f"/upload?token={tok['token']}", data=data)
    assert resp.status == 201, await resp.text()
    status, tok = await d.call("POST", "/folder/file/download", **body)
    assert status == 200
    return str(tok["token"])


def relayed(d: Daemon) -> float:
    return d.ctx.services.metrics.relayed._value.get()  # type: ignore[no-any-return]


async def relayed_since(d: Daemon, before: float, expected: float) -> float:
    """What the relay counted since ``before`` (the count lands as the handler ends, just after
    the client has the last byte)."""
    for _ in range(500):
        if relayed(d) - before >= expected:
            break
        await asyncio.sleep(0.01)
    return relayed(d) - before


def free_relays(d: Daemon) -> int:
    return d.client.app[RELAYS]._free  # type: ignore[no-any-return]


@pytest.fixture
async def relay_daemon(
    start_daemon: Callable[..., AbstractAsyncContextManager[Daemon]],
) -> AsyncIterator[Daemon]:
    async with start_daemon("s3vol", sp={"transfer-idle-timeout": "2s"}) as d:
        yield d


async def test_whole_files_and_ranges_are_spliced_exactly(relay_daemon: Daemon) -> None:
    d = relay_daemon
    data = os.urandom(SIZE)
    token = await stored(d, data)
    before = relayed(d)
    resp = await d.client.get(f"/download?token={token}")
    assert resp.status == 200 and await resp.read() == data
    assert await relayed_since(d, before, SIZE) == SIZE
    for header, span in [
        ("bytes=1000-6300000", slice(1000, 6300001)),
        ("bytes=-5000000", slice(SIZE - 5000000, SIZE)),
        (f"bytes={SIZE - 4 * MiB - 1}-", slice(SIZE - 4 * MiB - 1, SIZE)),
    ]:
        before = relayed(d)
        resp = await d.client.get(f"/download?token={token}", headers={"Range": header})
        assert resp.status == 206 and await resp.read() == data[span], header
        assert await relayed_since(d, before, len(data[span])) == len(data[span])
    before = relayed(d)
    resp = await d.client.get(f"/download?token={token}", headers={"Range": "bytes=5-104"})
    assert resp.status == 206 and await resp.read() == data[5:105]  # small: streamed
    resp = await d.client.head(f"/download?token={token}")
    assert resp.status == 200 and resp.headers["Content-Length"] == str(SIZE)
    assert relayed(d) == before
    assert free_relays(d) == 8


async def test_with_the_relay_off_the_bytes_are_streamed(
    start_daemon: Callable[..., AbstractAsyncContextManager[Daemon]],
) -> None:
    async with start_daemon("s3vol", sp={"relay-threads": 0}) as d:
        data = os.urandom(SIZE)
        token = await stored(d, data)
        resp = await d.client.get(f"/download?token={token}")
        assert resp.status == 200 and await resp.read() == data
        assert relayed(d) == 0


def raw_request(d: Daemon, token: str) -> socket.socket:
    sock = socket.create_connection((d.client.host, d.client.port))
    sock.sendall(f"GET /download?token={token} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def read_some(sock: socket.socket, nbytes: int) -> bytes:
    got = b""
    while len(got) < nbytes:
        chunk = sock.recv(nbytes - len(got))
        if not chunk:
            break
        got += chunk
    return got


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled(d: Daemon, fds: int) -> None:
    """Every relay back, and no descriptor left behind (within a few seconds)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if free_relays(d) == 8 and open_fds() <= fds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"relays free {free_relays(d)}, descriptors {open_fds()} > {fds}")


async def test_a_client_that_hangs_up_mid_relay_costs_nothing(
    relay_daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    d = relay_daemon
    data = os.urandom(32 * MiB)
    token = await stored(d, data)
    await d.client.get(f"/download?token={token}")  # pooled connections opened once
    fds = open_fds()
    caplog.set_level(logging.INFO)
    for _ in range(3):
        sock = await asyncio.to_thread(raw_request, d, token)
        head = await asyncio.to_thread(read_some, sock, 2 * MiB)
        assert head.startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, mid-body
    await settled(d, fds)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    resp = await d.client.get(f"/download?token={token}")
    assert resp.status == 200 and await resp.read() == data


async def test_a_stalled_client_is_dropped_after_the_idle_time(relay_daemon: Daemon) -> None:
    d = relay_daemon
    data = os.urandom(48 * MiB)  # more than the socket buffers and the pipe hold
    token = await stored(d, data)
    fds = open_fds()
    sock = await asyncio.to_thread(raw_request, d, token)
    started = time.monotonic()
    await asyncio.sleep(4.0)  # reads nothing for twice the idle timeout
    rest = await asyncio.to_thread(read_some, sock, len(data) + 4096)
    sock.close()
    assert len(rest) < len(data), "the stalled connection was cut, not served to the end"
    assert time.monotonic() - started < 15
    await settled(d, fds)
