"""A ranged GET of one object on a socket of its own, for the daemon's zero-copy relay.

The request is a presigned URL (signed here, valid for a minute) sent by hand over plain HTTP;
the response's status line and headers are read and checked, and the socket is handed over
positioned at the first body byte.  Anything but the exact answer expected -- another status,
another length or range, a chunked body, TLS, a host that does not resolve -- gives None, and
the read is streamed through the S3 client as usual (which reports errors properly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import urllib.parse

from storage_proxy.core.files import RawBody

from .client import S3Connection

log = logging.getLogger(__name__)

#: Longest response head accepted (S3 heads are well under 2 KiB).
MAX_HEAD = 32 << 10
#: Connecting, sending the request and reading the head must end within this.
HEAD_TIMEOUT = 10.0
PRESIGN_SECONDS = 60


async def raw_get(conn: S3Connection, key: str, offset: int, length: int) -> RawBody | None:
    """``length`` bytes of ``key`` from ``offset`` on a connected socket, or None."""
    if length <= 0:
        return None
    url = await conn.presign("get_object", {"Key": key}, PRESIGN_SECONDS)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        return None  # TLS is not spliced: the stream goes through the S3 client
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    last = offset + length - 1
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nRange: bytes={offset}-{last}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            sock = await _connect(parts.hostname, parts.port or 80)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(sock, request)
            head, body = await _read_head(sock)
        if not _expected(head, offset, last):
            log.debug("raw GET of %s not used: unexpected answer %r", key, head[:300])
            return None
        raw, sock = RawBody(sock, body[:length], length), None
        return raw
    except (OSError, TimeoutError, ValueError) as e:
        log.debug("raw GET of %s not used: %s", key, e)
        return None
    finally:
        if sock is not None:
            sock.close()


async def _connect(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


async def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line and headers, the body bytes that came with them)."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ValueError("response head too long")
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ValueError("connection closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _expected(head: bytes, first: int, last: int) -> bool:
    """The head of a 206 with exactly the range asked (or a 200 of exactly those bytes)."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1."):
        return False
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return False
        fields[name.strip().lower()] = value.strip()
    if "transfer-encoding" in fields or fields.get("content-length") != str(last - first + 1):
        return False
    if status[1] == "206":
        return fields.get("content-range", "").startswith(f"bytes {first}-{last}/")
    return status[1] == "200" and first == 0
