"""The client listener's fast lane (``api/client/fastlane.py``) on a real listener: a plain
small-file download is answered by the lane exactly as aiohttp's handler answers it; anything
else — refusals, large files, directories, ranges, pipelined mixes, a lookup that has to wait,
a client gone meanwhile, a draining node — is answered as before, in order, audited once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from api_fixtures import Daemon
from test_downloads import VFID, download_token, setup_file

from storage_proxy.api.client import create_client_app
from storage_proxy.api.client.fastlane import FastLane, LaneSite, lane_fits
from storage_proxy.api.inflight import InflightRequests
from storage_proxy.server import _start_listener

SMALL = os.urandom(4096)
#: Headers that differ between any two answers.
_PER_ANSWER = {"Date", "X-Request-ID"}


@dataclasses.dataclass
class Listener:
    url: str
    port: int
    inflight: InflightRequests
    lane: FastLane | None


async def _listen(daemon: Daemon, fast: bool) -> tuple[Any, Listener]:
    services = daemon.ctx.services
    settings = dataclasses.replace(services.settings, fast_lane=fast)
    app = create_client_app(dataclasses.replace(services, settings=settings))
    inflight = InflightRequests()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener = {"service-addr": {"host": "127.0.0.1", "port": port}, "ssl-enabled": False}
    runner = await _start_listener(app, listener, 5.0, "client", inflight)
    sites = list(runner.sites)
    lane = sites[0]._lane if isinstance(sites[0], LaneSite) else None
    return runner, Listener(f"http://127.0.0.1:{port}", port, inflight, lane)


@pytest.fixture
async def doors(daemon: Daemon) -> AsyncIterator[tuple[Listener, Listener]]:
    """The same services behind two client listeners: with the lane, and aiohttp's alone."""
    assert lane_fits()
    fast_runner, fast = await _listen(daemon, True)
    plain_runner, plain = await _listen(daemon, False)
    assert fast.lane is not None and plain.lane is None
    yield fast, plain
    await fast_runner.cleanup()
    await plain_runner.cleanup()


async def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _audit(daemon: Daemon, rid: str) -> list[dict[str, Any]]:
    """The audit lines of one request (the log's writer thread writes them in batches)."""
    for _ in range(100):
        recent = await asyncio.to_thread(daemon.ctx.services.audit.recent, "vol1", VFID, 1000)
        found = [line for line in recent if line["request_id"] == rid]
        if found:
            await asyncio.sleep(0.3)  # a second line, were there one, has been written too
            recent = await asyncio.to_thread(daemon.ctx.services.audit.recent, "vol1", VFID, 1000)
            return [line for line in recent if line["request_id"] == rid]
        await asyncio.sleep(0.05)
    return []


async def test_a_small_file_is_answered_by_the_lane_as_aiohttp_answers_it(
    daemon: Daemon, doors: tuple[Listener, Listener]
) -> None:
    fast, plain = doors
    await setup_file(daemon, "dir/small.bin", SMALL)
    token = await download_token(daemon, "dir/small.bin")
    got = await _get(f"{fast.url}/download?token={token}", **{"X-Request-ID": "lane-1"})
    want = await _get(f"{plain.url}/download?token={token}", **{"X-Request-ID": "plain-1"})
    assert fast.lane is not None and fast.lane.answered == 1
    assert got[0] == want[0] == 200 and got[2] == want[2] == SMALL
    assert {k: v for k, v in got[1].items() if k not in _PER_ANSWER} == {
        k: v for k, v in want[1].items() if k not in _PER_ANSWER
    }
    assert got[1]["X-Request-ID"] == "lane-1"
    (line,) = await _audit(daemon, "lane-1")  # one audit line, the grant's principal, as aiohttp's
    (other,) = await _audit(daemon, "plain-1")
    assert (line["operation"], line["result"], line["bytes"]) == ("file.download", "ok", 4096)
    assert line["principal"] == other["principal"] and line["door"] == other["door"] == "client"


async def test_refusals_are_answered_as_before_and_audited_once(
    daemon: Daemon, doors: tuple[Listener, Listener]
) -> None:
    fast, plain = doors
    path = await setup_file(daemon, "dir/gone.bin", SMALL)
    token = await download_token(daemon, "dir/gone.bin")
    path.unlink()
    for url, rid in ((fast.url, "lane-404"), (plain.url, "plain-404")):
        status, headers, body = await _get(f"{url}/download?token={token}", **{"X-Request-ID": rid})
        assert status == 404 and headers["X-Request-ID"] == rid
        assert b"file-not-found" in body
        (line,) = await _audit(daemon, rid)
        assert line["result"] == "file-not-found"
    status_fast, _, body_fast = await _get(f"{fast.url}/download?token=not.a.token")
    status_plain, _, body_plain = await _get(f"{plain.url}/download?token=not.a.token")
    assert status_fast == status_plain and 400 <= status_fast < 500
    assert json.loads(body_fast)["code"] == json.loads(body_plain)["code"]
    assert fast.lane is not None and fast.lane.answered == 0 and fast.lane.handed == 2


async def test_large_files_and_directories_are_sent_by_aiohttp(
    daemon: Daemon, doors: tuple[Listener, Listener]
) -> None:
    fast, _ = doors
    big = os.urandom(300_000)
    await setup_file(daemon, "dir/big.bin", big)
    token = await download_token(daemon, "dir/big.bin")
    status, _, body = await _get(f"{fast.url}/download?token={token}")
    assert status == 200 and body == big
    token = await download_token(daemon, "dir", archive=True)
    status, headers, body = await _get(f"{fast.url}/download?token={token}")
    assert status == 200 and headers["Content-Type"] == "application/zip" and body[:2] == b"PK"
    assert fast.lane is not None and fast.lane.answered == 0 and fast.lane.handed == 2


async def _raw(port: int, data: bytes, answers: int) -> list[tuple[bytes, bytes]]:
    """Send ``data`` at once; read ``answers`` responses (head, body) in the order they came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return [await _answer(reader) for _ in range(answers)]
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,  # a 304 has no body
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


def _slow_opens(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, seconds: float, opened_first: bool = False
) -> None:
    """Downloads are opened ``seconds`` late (before the open, or after it)."""
    transfers = daemon.ctx.services.transfers
    real = transfers.open_download

    async def slow(*args: Any, **kwargs: Any) -> Any:
        if not opened_first:
            await asyncio.sleep(seconds)
        opened = await real(*args, **kwargs)
        if opened_first:
            await asyncio.sleep(seconds)
        return opened

    monkeypatch.setattr(transfers, "open_download", slow)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _request(token: str, *extra: str) -> bytes:
    lines = [f"GET /download?token={token} HTTP/1.1", "Host: x", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def test_pipelined_requests_are_answered_in_order(
    daemon: Daemon, doors: tuple[Listener, Listener]
) -> None:
    fast, _ = doors
    bodies = [os.urandom(1000 + i) for i in range(4)]
    tokens = []
    for i, content in enumerate(bodies):
        await setup_file(daemon, f"p/{i}.bin", content)
        tokens.append(await download_token(daemon, f"p/{i}.bin"))
    data = (
        _request(tokens[0])
        + _request(tokens[1], "Range: bytes=0-9")  # aiohttp's
        + _request(tokens[2])
        + _request("bad.token")  # refused, by aiohttp
        + _request(tokens[3])
    )
    answers = await _raw(fast.port, data, 5)  # a burst: aiohttp's, in order
    assert [a[0].split(b"\r\n", 1)[0] for a in answers] == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 206 Partial Content",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 200 OK",
    ]
    assert [a[1] for a in answers] == [
        bodies[0],
        bodies[1][:10],
        bodies[2],
        answers[3][1],
        bodies[3],
    ]
    assert fast.lane is not None and fast.lane.answered == 0
    many = b"".join(_request(tokens[i % 4]) for i in range(80))  # past aiohttp's queue bound
    answers = await _raw(fast.port, many, 80)
    assert [a[1] for a in answers] == [bodies[i % 4] for i in range(80)]


async def test_a_lookup_that_waits_keeps_the_order(
    daemon: Daemon, doors: tuple[Listener, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane's step may have to wait (a lookup, a read in a thread): it finishes in a task,
    and what arrives meanwhile waits behind it."""
    fast, _ = doors
    _slow_opens(daemon, monkeypatch, 0.05)
    bodies = [os.urandom(700 + i) for i in range(3)]
    tokens = []
    for i, content in enumerate(bodies):
        await setup_file(daemon, f"w/{i}.bin", content)
        tokens.append(await download_token(daemon, f"w/{i}.bin"))
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    try:
        writer.write(_request(tokens[0]))  # the lane takes it, and waits
        await asyncio.sleep(0.02)
        later = [_request(tokens[1], "Range: bytes=1-3"), _request(tokens[2])]
        later += [_request(tokens[i % 3]) for i in range(60)]
        writer.write(b"".join(later))  # these queue behind it: aiohttp's, in order
        got = [await _answer(reader) for _ in range(63)]
    finally:
        writer.close()
    expected = [bodies[0], bodies[1][1:4], bodies[2]] + [bodies[i % 3] for i in range(60)]
    assert [a[1] for a in got] == expected
    assert fast.lane is not None and fast.lane.answered == 1
    assert fast.inflight.count == 0


async def test_a_client_gone_while_the_lane_waits_leaves_nothing_open(
    daemon: Daemon, doors: tuple[Listener, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _ = doors
    await setup_file(daemon, "g/f.bin", SMALL)
    token = await download_token(daemon, "g/f.bin")
    _slow_opens(daemon, monkeypatch, 0.2, opened_first=True)  # the client goes meanwhile
    await _get(f"{fast.url}/download?token={token}")  # warm: descriptors the first one opens
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        writer.write(_request(token))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()
    await asyncio.sleep(0.5)
    assert fast.inflight.count == 0
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_the_lane_steps_aside(daemon: Daemon, doors: tuple[Listener, Listener]) -> None:
    """HTTP/1.0, ``Connection: close``, escaped tokens, other parameters, HEAD, and a node that
    drains: aiohttp answers each (the lane never sees them)."""
    fast, _ = doors
    await setup_file(daemon, "s/f.bin", SMALL)
    token = await download_token(daemon, "s/f.bin")
    assert fast.lane is not None
    one_oh = f"GET /download?token={token} HTTP/1.0\r\nHost: x\r\n\r\n".encode()
    (answer,) = await _raw(fast.port, one_oh, 1)
    assert answer[1] == SMALL
    for extra in (("Connection: close",), ("If-None-Match: *",)):
        await _raw(fast.port, _request(token, *extra), 1)
        assert fast.lane.answered == 0, extra
    await _get(f"{fast.url}/download?token={token}&archive=false")
    assert fast.lane.answered == 0
    (escaped,) = await _raw(fast.port, _request(token.replace(".", "%2E")), 1)
    assert escaped[0].startswith(b"HTTP/1.1 200") and escaped[1] == SMALL
    async with aiohttp.ClientSession() as session:
        async with session.head(f"{fast.url}/download?token={token}") as resp:
            assert resp.status == 200
    assert fast.lane.answered == 0 and fast.lane.handed == 0
    fast.inflight.draining = True
    status, _, _ = await _get(f"{fast.url}/download?token={token}")
    assert status == 503 and fast.lane.answered == 0


async def test_lane_answers_are_counted_in_the_request_metrics(
    daemon: Daemon, doors: tuple[Listener, Listener]
) -> None:
    fast, _ = doors
    await setup_file(daemon, "m/f.bin", SMALL)
    token = await download_token(daemon, "m/f.bin")
    registry = daemon.ctx.services.metrics.registry
    labels = {
        "method": "GET",
        "endpoint": "/download",
        "operation": "download",
        "status_code": "200",
        "error_detail": "",
    }
    count = "backendai_api_request_count_total"
    before = registry.get_sample_value(count, labels) or 0.0
    sent = registry.get_sample_value("storage_proxy_download_bytes_total", {"api": "client"})
    for _ in range(3):
        await _get(f"{fast.url}/download?token={token}")
    assert registry.get_sample_value(count, labels) == before + 3
    after = registry.get_sample_value("storage_proxy_download_bytes_total", {"api": "client"})
    assert after == (sent or 0.0) + 3 * len(SMALL)


def test_the_lane_knows_this_aiohttp() -> None:
    """The lane works with aiohttp's connection handler: an aiohttp that differs turns it off
    (and this test fails, so the lane is checked against the new release)."""
    assert lane_fits()


async def test_lane_answers_are_in_the_access_log(
    daemon: Daemon, doors: tuple[Listener, Listener], caplog: pytest.LogCaptureFixture
) -> None:
    """With the access log on (the default level), the lane still answers, and logs its line
    as aiohttp's handler logs one (never the query: it holds the token)."""
    fast, plain = doors
    await setup_file(daemon, "a/f.bin", SMALL)
    token = await download_token(daemon, "a/f.bin")
    with caplog.at_level(logging.INFO, logger="storage_proxy.access.client"):
        await _get(f"{fast.url}/download?token={token}", **{"X-Request-ID": "lane-log"})
        await _get(f"{plain.url}/download?token={token}", **{"X-Request-ID": "plain-log"})
    assert fast.lane is not None and fast.lane.answered == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "storage_proxy.access.client"]
    (lane_line,) = [line for line in lines if line.endswith("id=lane-log")]
    (plain_line,) = [line for line in lines if line.endswith("id=plain-log")]
    assert (
        lane_line.split()[:4] == plain_line.split()[:4] == ["127.0.0.1", "GET", "/download", "200"]
    )
    assert token not in lane_line


async def test_odd_request_ids(daemon: Daemon, doors: tuple[Listener, Listener]) -> None:
    """A request id that is not ASCII is aiohttp's to echo (nothing left open); an empty one
    gets the same new id in the answer and in the audit line."""
    fast, _ = doors
    path = await setup_file(daemon, "i/f.bin", SMALL)
    token = await download_token(daemon, "i/f.bin")
    await _raw(fast.port, _request(token), 1)
    before = _fds()
    for _ in range(20):
        head, body = (await _raw(fast.port, _request(token, "X-Request-ID: id-\xff"), 1))[0]
        assert head.startswith(b"HTTP/1.1 200") and body == SMALL
    assert _fds() <= before
    path.unlink()
    head, _ = (await _raw(fast.port, _request(token, "X-Request-ID:"), 1))[0]
    rid = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    assert rid and head.startswith(b"HTTP/1.1 404")
    (line,) = await _audit(daemon, rid)
    assert line["result"] == "file-not-found"


async def test_an_answer_in_the_making_is_not_cut_by_keep_alive(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp closes a connection idle for its keep-alive time; one whose request the lane is
    answering is not idle."""
    services = daemon.ctx.services
    app = create_client_app(services)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener = {"service-addr": {"host": "127.0.0.1", "port": port}, "ssl-enabled": False}
    runner = await _start_listener(app, listener, 5.0, "client", InflightRequests(), False, 1.0)
    try:
        await setup_file(daemon, "k/f.bin", SMALL)
        token = await download_token(daemon, "k/f.bin")
        _slow_opens(daemon, monkeypatch, 0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):  # at 0.8 s after connecting, then 0.8 s after an answer
                await asyncio.sleep(0.8)
                writer.write(_request(token))
                head, body = await _answer(reader)
                assert head.startswith(b"HTTP/1.1 200") and body == SMALL
        finally:
            writer.close()
    finally:
        await runner.cleanup()


async def test_an_answer_made_while_the_node_drains_closes_its_connection(
    daemon: Daemon, doors: tuple[Listener, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _ = doors
    await setup_file(daemon, "d/f.bin", SMALL)
    token = await download_token(daemon, "d/f.bin")
    _slow_opens(daemon, monkeypatch, 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    try:
        writer.write(_request(token))
        await asyncio.sleep(0.1)
        fast.inflight.draining = True  # the drain starts while the lane waits
        head, body = await _answer(reader)
        assert head.startswith(b"HTTP/1.1 200") and body == SMALL
        assert b"Connection: close" in head
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and it is closed
    finally:
        writer.close()
