"""Large reads from an object store sent on without passing through the daemon: ``splice``.

A download of a file an object store holds is, by default, read by the S3 client into Python
bytes and written out again -- two copies and a few Python steps per chunk, on the same cores the
storage and the client use.  Where the volume can hand the read over on a socket of its own
(:meth:`AbstractVolume.open_raw_read`), the bytes go socket → pipe → socket inside the kernel
instead (``splice(2)``), moved by one of ``[storage-proxy] relay-threads`` threads per worker.

The response's status and headers are written by aiohttp as for any download; the relay starts
once they are on the wire (the transport's buffer empty) and works on a duplicate of the client's
socket descriptor, so a connection the event loop closes meanwhile can never have its number
reused under the relay.  A client that reads nothing for ``transfer-idle-timeout`` is dropped, a
shutdown stops the relay within a quarter of a second, and a store that ends early cuts the
connection (the client sees a short body, as with any broken-off download).  Only plain TCP
connections are relayed (TLS is not spliced); with every relay thread busy, or ``relay-threads =
0``, the read is streamed as before.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from ..core.errors import BackendUnavailable
from ..core.files import RawBody
from .streams import ClientGone, bounded, cut, drained, idle_timeout, write_chunk

#: Reads shorter than this are streamed (a relay's set-up is not worth it).
RELAY_MIN = 4 << 20
PIPE_SIZE = 1 << 20
#: How often a waiting relay looks whether it was told to stop.
STOP_CHECK = 0.25
_MOVE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class UpstreamEnded(ConnectionError):
    """The store's connection ended before every byte was relayed."""


class Stalled(TimeoutError):
    """Nothing moved for the idle timeout."""


class Stopped(Exception):
    """The relay was told to stop (its request was cancelled)."""


def splice_between(src: int, dst: int, count: int, idle: float, stop: threading.Event) -> int:
    """Blocking: move ``count`` bytes from socket ``src`` to socket ``dst`` (both non-blocking)
    through a pipe, in the kernel.  Raises :class:`UpstreamEnded`, :class:`Stalled`,
    :class:`Stopped`, or the OSError of a client gone; returns ``count``."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            capacity = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above the system's pipe-max-size: the default then
            capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        moved = held = 0
        last_progress = time.monotonic()
        while moved < count:
            progressed = False
            want = min(count - moved - held, capacity - held)
            if want > 0:
                try:
                    n = os.splice(src, w, want, flags=_MOVE)
                except BlockingIOError:
                    n = -1
                if n == 0:
                    raise UpstreamEnded(f"the store sent {moved + held} of {count} bytes")
                if n > 0:
                    held += n
                    progressed = True
            if held:
                try:
                    m = os.splice(r, dst, held, flags=_MOVE)
                except BlockingIOError:
                    m = 0
                held -= m
                moved += m
                progressed = progressed or m > 0
            now = time.monotonic()
            if progressed:
                last_progress = now
                continue
            if stop.is_set():
                raise Stopped
            if now - last_progress >= idle:
                raise Stalled(f"nothing moved for {idle:.0f}s")
            # only what can move next is waited for: a store that has sent everything and hung
            # up while the pipe is full must not wake this loop until the client reads
            poller = select.poll()
            if want > 0:
                poller.register(src, select.POLLIN)
            if held:
                poller.register(dst, select.POLLOUT)
            poller.poll(1000 * min(STOP_CHECK, idle - (now - last_progress)))
        return moved
    finally:
        os.close(r)
        os.close(w)


class Relays:
    """The relay threads of one worker process (``threads`` at most at once)."""

    def __init__(self, threads: int) -> None:
        self._free = threads
        self._pool = ThreadPoolExecutor(threads, "relay") if threads > 0 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def can_take(self, request: web.Request, count: int) -> bool:
        """A relay thread is free and the client's connection is plain TCP."""
        if self._pool is None or self._free <= 0 or count < RELAY_MIN:
            return False
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_extra_info("sslcontext") is not None:
            return False
        sock = transport.get_extra_info("socket")
        return sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)

    async def send(self, request: web.Request, response: web.StreamResponse, raw: RawBody) -> None:
        """Send ``raw``'s bytes as the body of the prepared ``response``; owns ``raw`` (closed
        once the relay has ended, whatever happened).  A client gone raises ClientGone; a store
        that ends early, BackendUnavailable (the connection is cut first)."""
        assert self._pool is not None
        self._free -= 1
        handed_over = False
        try:
            idle = idle_timeout(request)
            if raw.head:
                await write_chunk(request, response, raw.head)
            transport = request.transport
            await bounded(transport, drained(transport), idle, "read")
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None:
                raise ClientGone("the client went away")
            dst = os.dup(sock.fileno())
            stop = threading.Event()
            count = raw.length - len(raw.head)
            try:
                job = asyncio.get_running_loop().run_in_executor(
                    self._pool, splice_between, raw.fileno(), dst, count, idle, stop
                )
            except BaseException:  # the pool is shut down (the daemon is stopping)
                os.close(dst)
                raise
            handed_over = True  # the thread's end closes both descriptors, not before
            job.add_done_callback(lambda done: _release(done, raw, dst))
            await _finish(job, stop, transport)
        finally:
            self._free += 1
            if not handed_over:
                raw.close()


def _release(job: asyncio.Future[int], raw: RawBody, dst: int) -> None:
    """After the relay thread ended (never before): its descriptors closed, and its outcome
    taken (a request cancelled meanwhile no longer awaits it)."""
    os.close(dst)
    raw.close()
    if not job.cancelled():
        job.exception()


async def _finish(job: asyncio.Future[int], stop: threading.Event, transport: object) -> None:
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        stop.set()  # the thread notices within STOP_CHECK, then its descriptors are closed
        cut(transport)
        raise
    except UpstreamEnded as e:
        cut(transport)
        raise BackendUnavailable(f"the object store ended the read early: {e}") from None
    except Stalled as e:
        cut(transport)
        raise ClientGone(f"the client read nothing: {e}") from None
    except OSError as e:  # EPIPE, ECONNRESET: the client went away
        cut(transport)
        raise ClientGone(str(e)) from None
