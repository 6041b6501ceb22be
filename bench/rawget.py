"""A GET read from a plain socket in 1 MiB pieces, body discarded: the client the download
benchmarks share, so that the server (not the client) is the slower end.

curl (100 KiB reads, each passed through its write callback) and aiohttp (a Python-level chunk
per read) top out below what a server sends over loopback; this client costs one ``recv_into``
per MiB.
"""

from __future__ import annotations

import socket
import time
import urllib.parse


class GetError(Exception):
    """The server closed the connection before sending its headers."""


def socket_get(url: str, timeout: float = 900.0) -> tuple[int, int, float]:
    """(status, body bytes, seconds from connect to the last byte) of one ``GET url``."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(buf)
            if not n:
                raise GetError(f"GET {parts.netloc}: the connection closed before the headers")
            head += bytes(view[:n])
        head, _, body_start = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = int({k.lower(): v for k, v in fields.items()}.get("content-length", "-1"))
        received = len(body_start)
        while received < length:
            n = sock.recv_into(buf)
            if not n:
                break
            received += n
    return status, received, time.perf_counter() - t0
