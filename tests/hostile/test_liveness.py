"""Liveness under slow, stalled and lingering clients: zips nobody reads, requests whose head
never ends, kept-alive connections during shutdown.  The node keeps answering, stalled clients
are dropped after the configured time, and a stop takes one ``shutdown-timeout`` at most."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import urllib.request

import pytest
from harness import StartHostile, Tenant

STALLED = 20


def _open_stalled_zip(t: Tenant, path: str) -> socket.socket:
    """Ask for a zip and never read it (a small receive buffer, so the server fills it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", t.daemon.client_port))
    url = f"{t.files_url}/files/{path}?archive=true".split(t.daemon.client_url, 1)[1]
    sock.sendall(
        f"GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n".encode()
    )
    return sock


def _timed_manager(t: Tenant, path: str, body: dict) -> tuple[int, float]:
    started = time.monotonic()
    status = t.manager("POST", path, body).status
    return status, time.monotonic() - started


@pytest.mark.hostile
def test_stalled_zips_do_not_stall_the_node(start_hostile: StartHostile) -> None:
    t = start_hostile(storage_proxy={"transfer-idle-timeout": "3s"})
    tree = t.mount / "big"
    tree.mkdir()
    for i in range(4):
        (tree / f"f{i}.bin").write_bytes(os.urandom(8 << 20))
    socks = [_open_stalled_zip(t, "big") for _ in range(STALLED)]
    try:
        time.sleep(1.0)  # every zip has filled its socket and waits
        for i in range(10):
            status, took = _timed_manager(t, "/folder/file/mkdir", {"relpath": f"m{i}"})
            assert status == 200 and took < 1.0, (status, took)
        status, took = _timed_manager(t, "/folder/file/list", {"relpath": "."})
        assert status == 200 and took < 1.0
        time.sleep(4.5)  # past the idle timeout: the stalled clients were dropped
        dropped = 0
        for sock in socks:
            sock.settimeout(5)
            try:
                while sock.recv(1 << 16):
                    pass
                dropped += 1  # the server closed it
            except (ConnectionResetError, TimeoutError):
                dropped += 1
        assert dropped == STALLED
    finally:
        for sock in socks:
            sock.close()
    assert "Traceback" not in t.daemon.log_text()


@pytest.mark.hostile
def test_a_request_head_that_never_ends_is_cut(start_hostile: StartHostile) -> None:
    t = start_hostile(storage_proxy={"request-header-timeout": "2s"})
    socks = []
    for _ in range(50):  # slow-loris: a head trickling in, never finished
        sock = socket.create_connection(("127.0.0.1", t.daemon.client_port))
        sock.sendall(b"GET /api/v1/vfolders HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    try:
        assert t.manager("GET", "/volumes").status == 200
        time.sleep(3.5)
        for sock in socks:
            sock.settimeout(3)
            assert sock.recv(1) == b"", "the stalled connection is still open"
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.hostile
def test_shutdown_takes_one_timeout_with_kept_alive_clients(start_hostile: StartHostile) -> None:
    """Clients that keep their connections alive and send request after request, and clients
    whose downloads never drain, cannot keep a stopping node alive past its shutdown-timeout
    (it once took twice that: the drain waited, then aiohttp's cleanup waited once more)."""
    t = start_hostile(storage_proxy={"shutdown-timeout": "3s"})
    (t.mount / "one-mib.bin").write_bytes(os.urandom(1 << 20))
    path = f"{t.files_url}/files/one-mib.bin".split(t.daemon.client_url, 1)[1]
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n"
    stop = time.monotonic() + 30

    async def chatter() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.daemon.client_port)
        try:
            while time.monotonic() < stop:  # back to back: some request is always in flight
                writer.write(request.encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while length > 0:  # a slow reader: its request stays in flight a while
                    length -= len(await reader.readexactly(min(length, 1 << 16)))
                    await asyncio.sleep(0.005)
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            return
        finally:
            writer.close()

    (t.mount / "big.bin").write_bytes(os.urandom(64 << 20))
    big = f"{t.files_url}/files/big.bin".split(t.daemon.client_url, 1)[1]

    async def stalled() -> None:
        """Asks for a large file and reads nothing: its request can only end by being cut."""
        reader, writer = await asyncio.open_connection("127.0.0.1", t.daemon.client_port)
        writer.write(
            f"GET {big} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            await asyncio.sleep(25)
        finally:
            writer.close()

    async def run() -> float:
        clients = [asyncio.ensure_future(chatter()) for _ in range(8)]
        clients += [asyncio.ensure_future(stalled()) for _ in range(4)]
        await asyncio.sleep(0.5)
        started = time.monotonic()
        t.daemon.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(t.daemon.proc.wait, 20)
        took = time.monotonic() - started
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return took

    took = asyncio.run(run())
    assert t.daemon.proc.returncode == 0
    assert took < 3 + 1.5, took


@pytest.mark.hostile
def test_signed_tokens_never_reach_the_log(plain_tenant: Tenant) -> None:
    import base64
    import hashlib

    t = plain_tenant
    data = b"signed payload"
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    body = {"project": "p", "domain": "d", "filename": "f.txt", "content_md5": md5}
    loc = t.daemon.manager("POST", "/dataproxy/upload-location", body)
    assert loc.status == 200, loc
    signed = loc.json()["signed_url"]
    token = signed.rsplit("/", 1)[1]
    signed = f"{t.daemon.client_url}/signed/{token}"
    put = urllib.request.Request(signed, data=data, method="PUT", headers=loc.json()["headers"])
    assert urllib.request.urlopen(put).status == 201
    link = t.daemon.manager(
        "POST", "/dataproxy/download-link", {"native_url": loc.json()["native_url"]}
    )
    get_token = link.json()["signed_url"].rsplit("/", 1)[1]
    assert urllib.request.urlopen(f"{t.daemon.client_url}/signed/{get_token}").read() == data
    for bad in (token[:-3] + "xyz", get_token + "A"):  # error lines too
        try:
            urllib.request.urlopen(f"{t.daemon.client_url}/signed/{bad}")
        except urllib.error.HTTPError as e:
            assert e.code in (401, 403)
    time.sleep(0.3)
    log = t.daemon.log_text()
    assert "/signed/<token>" in log
    for secret in (token, get_token, token[:-3], get_token.split(".")[2]):
        assert secret not in log


@pytest.mark.hostile
def test_clients_hanging_up_mid_download_are_no_server_error(plain_tenant: Tenant) -> None:
    """Hang-ups in the middle of a sendfile'd file, a zip and a small answer: no traceback, no
    500, and the node serves the next request at once."""
    t = plain_tenant
    (t.mount / "big.bin").write_bytes(os.urandom(32 << 20))
    (t.mount / "tree").mkdir()
    (t.mount / "tree" / "a.bin").write_bytes(os.urandom(16 << 20))
    for path in ("files/big.bin", "files/tree?archive=true", "files/big.bin"):
        url = f"{t.files_url}/{path}".split(t.daemon.client_url, 1)[1]
        head = f"GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n"
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", t.daemon.client_port)) as sock:
                sock.sendall(head.encode())
                sock.recv(1 << 16)  # the answer has begun; now leave
            # (closing with unread data makes the kernel reset the connection)
    time.sleep(0.5)
    assert t.manager("GET", "/volumes").status == 200
    log = t.daemon.log_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    assert " 500 " not in log
