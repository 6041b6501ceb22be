"""The splice relay's loop on its own (socket pairs, no daemon): every byte moved in order, and
each way it can end -- the store ending early, a stalled reader, a stop, a reader gone -- ends it
promptly with its own error, never a spin."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from storage_proxy.api.relay import Stalled, Stopped, UpstreamEnded, splice_between
from storage_proxy_s3.rawget import _expected


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """(store side, relay's source, relay's destination, client side)."""
    store, src = pair()
    dst, client = pair()
    yield store, src, dst, client
    for s in (store, src, dst, client):
        s.close()


def feed(sock: socket.socket, data: bytes, then_close: bool = True) -> threading.Thread:
    def run() -> None:
        sock.setblocking(True)
        try:
            sock.sendall(data)
            if then_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the test is over and closed the pair (a stalled or gone reader)
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def drain(sock: socket.socket, into: bytearray) -> threading.Thread:
    def run() -> None:
        sock.setblocking(True)
        while chunk := sock.recv(1 << 20):
            into.extend(chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_every_byte_arrives_in_order(sockets: tuple[socket.socket, ...]) -> None:
    store, src, dst, client = sockets
    data = os.urandom(9 << 20)
    got = bytearray()
    feed(store, data)
    reader = drain(client, got)
    moved = splice_between(src.fileno(), dst.fileno(), len(data), 5.0, threading.Event())
    dst.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert moved == len(data) and bytes(got) == data


def test_only_the_asked_bytes_are_moved(sockets: tuple[socket.socket, ...]) -> None:
    store, src, dst, client = sockets
    feed(store, b"a" * 1000 + b"NOT-MINE", then_close=False)
    got = bytearray()
    reader = drain(client, got)
    assert splice_between(src.fileno(), dst.fileno(), 1000, 5.0, threading.Event()) == 1000
    dst.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert bytes(got) == b"a" * 1000


def test_a_store_that_ends_early_is_an_error(sockets: tuple[socket.socket, ...]) -> None:
    store, src, dst, client = sockets
    feed(store, b"x" * 5000)
    drain(client, bytearray())
    with pytest.raises(UpstreamEnded, match="5000 of 8000"):
        splice_between(src.fileno(), dst.fileno(), 8000, 5.0, threading.Event())


def test_a_reader_that_stalls_is_given_up_after_the_idle_time(
    sockets: tuple[socket.socket, ...],
) -> None:
    store, src, dst, client = sockets
    feed(store, os.urandom(64 << 20), then_close=False)  # far more than the buffers hold
    started = time.monotonic(), time.process_time()
    with pytest.raises(Stalled):
        splice_between(src.fileno(), dst.fileno(), 64 << 20, 1.0, threading.Event())
    wall, cpu = time.monotonic() - started[0], time.process_time() - started[1]
    assert 0.9 <= wall < 3.0
    assert cpu < 0.5, "the wait must sleep, not spin"


def test_a_store_done_and_gone_does_not_wake_a_waiting_relay(
    sockets: tuple[socket.socket, ...],
) -> None:
    """The store sent all and hung up while the client is slow: the relay waits for the client
    without spinning on the store's hang-up, then finishes."""
    store, src, dst, client = sockets
    data = os.urandom(1 << 20)  # fits the relay's pipe and the socket buffers

    def send_and_hang_up() -> None:
        store.setblocking(True)
        store.sendall(data)
        store.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=send_and_hang_up, daemon=True).start()
    got = bytearray()

    def late_reader() -> None:
        time.sleep(1.0)
        drain(client, got).join(20)

    reader = threading.Thread(target=late_reader, daemon=True)
    reader.start()
    cpu = time.process_time()
    assert splice_between(src.fileno(), dst.fileno(), len(data), 10.0, threading.Event())
    assert time.process_time() - cpu < 0.5, "waiting for the client must not spin"
    dst.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert bytes(got) == data


def test_a_stop_ends_a_waiting_relay_within_a_moment(sockets: tuple[socket.socket, ...]) -> None:
    store, src, dst, client = sockets
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        splice_between(src.fileno(), dst.fileno(), 1 << 20, 30.0, stop)
    assert time.monotonic() - started < 1.5


def test_a_reader_gone_is_an_os_error(sockets: tuple[socket.socket, ...]) -> None:
    store, src, dst, client = sockets
    feed(store, os.urandom(16 << 20), then_close=False)
    client.close()
    with pytest.raises(OSError) as caught:
        splice_between(src.fileno(), dst.fileno(), 16 << 20, 5.0, threading.Event())
    assert not isinstance(caught.value, UpstreamEnded | Stalled)


@pytest.mark.parametrize(
    ("head", "first", "last", "ok"),
    [
        (b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 5-14/99",
         5, 14, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10", 0, 9, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99", 0, 9, False),  # a range ignored: whole object
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10", 5, 14, False),  # 200 but not from the start
        (b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 6-15/99",
         5, 14, False),
        (b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n"
         b"Content-Range: bytes 5-14/99", 5, 14, False),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 10", 0, 9, False),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10", 0, 9, False),
        (b"garbage", 0, 9, False),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 10", 0, 9, False),
    ],
)  # fmt: skip
def test_only_the_exact_answer_is_relayed(head: bytes, first: int, last: int, ok: bool) -> None:
    assert _expected(head, first, last) is ok
