"""``[storage-proxy] event-loop``: the daemon on uvloop serves every kind of transfer and keeps
its liveness guarantees -- uvloop has no ``loop.sendfile`` and its transports give pseudo-sockets
that cannot shut down, so large downloads and cutting a stalled client take other paths there.
Each test runs on both loops (the same attacks, the same answers)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from daemon_fixtures import StartDaemon
from e2e_support import free_ports, write_config
from harness import TOKEN_SECRET, StartHostile, Tenant, make_tenant

LOOPS = ["asyncio", "uvloop"]
TUS = {"Tus-Resumable": "1.0.0"}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _start(start_hostile: StartHostile, loop: str) -> Tenant:
    t = start_hostile(storage_proxy={"event-loop": loop, "transfer-idle-timeout": "3s"})
    assert f"on the {loop} event loop" in t.daemon.log_text()
    return t


def _read_until_closed(sock: socket.socket) -> int:
    """Bytes read from a stalled download once it is read again, until the server has closed
    it (or 10 s pass: a connection still open then was not cut)."""
    sock.settimeout(10)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except (ConnectionResetError, TimeoutError, ssl.SSLError):
        pass
    return received


def _no_server_error(t: Tenant) -> None:
    log = t.daemon.log_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    assert " 500 " not in log


@pytest.mark.hostile
@pytest.mark.parametrize("loop", LOOPS)
def test_every_transfer_is_whole_on_either_loop(start_hostile: StartHostile, loop: str) -> None:
    t = _start(start_hostile, loop)
    big = os.urandom(20 << 20)  # sendfile'd in slices
    (t.mount / "big.bin").write_bytes(big)
    (t.mount / "small.bin").write_bytes(b"s" * 4096)  # the fast lane's size
    (t.mount / "tree").mkdir()
    (t.mount / "tree" / "a.txt").write_bytes(b"a" * 100_000)

    status, _, body = _get(f"{t.files_url}/files/big.bin", t.auth)
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
    status, headers, body = _get(
        f"{t.files_url}/files/big.bin", {**t.auth, "Range": "bytes=1000-5999999"}
    )
    assert status == 206 and body == big[1000:6_000_000], headers
    for rel, want in (("big.bin", big), ("small.bin", b"s" * 4096)):
        minted = t.manager("POST", "/folder/file/download", {"relpath": rel})
        assert minted.status == 200, minted
        status, _, body = _get(f"{t.daemon.client_url}/download?token={minted.json()['token']}")
        assert status == 200 and body == want, (rel, status)
    status, _, body = _get(f"{t.files_url}/files/tree?archive=true", t.auth)
    assert status == 200
    assert zipfile.ZipFile(io.BytesIO(body)).read("a.txt") == b"a" * 100_000

    data = os.urandom(3 << 20)
    created = t.manager("POST", "/folder/file/upload", {"relpath": "up.bin", "size": len(data)})
    assert created.status == 200, created
    for offset in range(0, len(data), 1 << 20):
        req = urllib.request.Request(
            f"{t.daemon.client_url}/upload?token={created.json()['token']}",
            data=data[offset : offset + (1 << 20)],
            method="PATCH",
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 204
    assert (t.mount / "up.bin").read_bytes() == data
    _no_server_error(t)


@pytest.mark.hostile
@pytest.mark.parametrize("loop", LOOPS)
def test_stalled_and_vanishing_readers_on_either_loop(
    start_hostile: StartHostile, loop: str
) -> None:
    """A client that stops reading a large file is dropped after the idle timeout while the
    node answers others at once; clients hanging up mid-file are no server error."""
    t = _start(start_hostile, loop)
    (t.mount / "big.bin").write_bytes(os.urandom(64 << 20))
    path = f"{t.files_url}/files/big.bin".split(t.daemon.client_url, 1)[1]
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n".encode()
    stalled = []
    for _ in range(4):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", t.daemon.client_port))
        sock.sendall(head)
        stalled.append(sock)
    try:
        time.sleep(1.0)  # each send has filled its socket and waits
        for _ in range(5):
            started = time.monotonic()
            assert t.manager("POST", "/folder/file/list", {"relpath": "."}).status == 200
            assert time.monotonic() - started < 1.0
        time.sleep(3.5)  # past the idle timeout
        for sock in stalled:
            assert _read_until_closed(sock) < 64 << 20  # cut by the server, not sent whole
    finally:
        for sock in stalled:
            sock.close()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", t.daemon.client_port)) as sock:
            sock.sendall(head)
            sock.recv(1 << 16)  # the answer has begun; now leave (unread data: a reset)
    time.sleep(0.5)
    status, _, body = _get(f"{t.files_url}/files/big.bin", {**t.auth, "Range": "bytes=0-9"})
    assert status == 206 and len(body) == 10
    _no_server_error(t)


@pytest.mark.hostile
@pytest.mark.parametrize("loop", LOOPS)
def test_a_slow_steady_reader_is_not_cut_as_a_stalled_one(
    start_hostile: StartHostile, loop: str
) -> None:
    """A client reading 16 MiB at ~4 MiB/s with a 2 s idle timeout gets all of it: slices are
    sized on the rate the file has gone at so far and grow at most twofold (the first slices
    land in the kernel's buffers at once and made any reader look fast)."""
    t = start_hostile(storage_proxy={"event-loop": loop, "transfer-idle-timeout": "2s"})
    data = os.urandom(16 << 20)
    (t.mount / "big.bin").write_bytes(data)
    path = f"{t.files_url}/files/big.bin".split(t.daemon.client_url, 1)[1]
    with socket.create_connection(("127.0.0.1", t.daemon.client_port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n\r\n".encode()
        )
        sock.settimeout(10)
        got = bytearray()
        started = time.monotonic()
        while True:
            chunk = sock.recv(64 << 10)
            if not chunk:
                break
            got += chunk
            ahead = len(got) / (4 << 20) - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # ~4 MiB/s
            if got.endswith(data[-4096:]) and len(got) >= len(data):
                break
    assert bytes(got).split(b"\r\n\r\n", 1)[1] == data
    _no_server_error(t)


def _tls_tenant(start_daemon_factory: StartDaemon, tmp_path: Path, loop: str) -> Tenant:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    mport, cport = free_ports(2)
    secret = "tls-manager-secret-0123456789"
    config = write_config(
        tmp_path / "tls.toml",
        data_dir=tmp_path / "data",
        manager_port=mport,
        client_port=cport,
        secret=secret,
        volumes={"vol1": {"backend": "vfs", "path": tmp_path / "vol1"}},
        storage_proxy={
            "secret": TOKEN_SECRET,
            "scan-workers": 0,
            "event-loop": loop,
            "transfer-idle-timeout": "3s",
        },
    )
    tls = f"ssl-enabled = true\nssl-cert = {json.dumps(str(cert))}\n"
    tls += f"ssl-privkey = {json.dumps(str(key))}\n"
    config.write_text(config.read_text().replace("[api.client]\n", f"[api.client]\n{tls}", 1))
    daemon = start_daemon_factory(
        config=config, manager_port=mport, client_port=cport, secret=secret
    )
    return make_tenant(daemon)


def _tls_get(t: Tenant, path: str, extra: str = "", rcvbuf: int | None = None) -> ssl.SSLSocket:
    raw = socket.socket()
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", t.daemon.client_port))
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(raw)
    url = f"{t.files_url}/files/{path}".split(t.daemon.client_url, 1)[1]
    head = f"GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.token}\r\n"
    sock.sendall(f"{head}{extra}Connection: close\r\n\r\n".encode())
    return sock


@pytest.mark.hostile
@pytest.mark.parametrize("loop", LOOPS)
def test_tls_downloads_are_whole_and_stalled_tls_readers_are_cut(
    start_daemon_factory: StartDaemon, tmp_path: Path, loop: str
) -> None:
    """Over TLS the file cannot be sent by the kernel: uvloop's path reads and writes it."""
    t = _tls_tenant(start_daemon_factory, tmp_path, loop)
    data = os.urandom(9 << 20)
    (t.mount / "big.bin").write_bytes(data)
    for extra, want in (("", data), ("Range: bytes=1000-5000999\r\n", data[1000:5_001_000])):
        with _tls_get(t, "big.bin", extra) as sock:
            sock.settimeout(20)
            answer = bytearray()
            while chunk := sock.recv(1 << 20):
                answer += chunk
        assert bytes(answer).split(b"\r\n\r\n", 1)[1] == want, extra
    stalled = [_tls_get(t, "big.bin", rcvbuf=4096) for _ in range(4)]
    try:
        time.sleep(4.5)  # past the idle timeout
        for sock in stalled:
            assert _read_until_closed(sock) < len(data)  # cut by the server, not sent whole
    finally:
        for sock in stalled:
            sock.close()
    _no_server_error(t)
