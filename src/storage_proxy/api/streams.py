"""Bodies in and out, bounded in time: a client that stalls is dropped, one that leaves is no error.

Every door that receives a body reads it through :func:`body_chunks` and every door that sends
one writes through :func:`write_chunk`; both give up after ``[storage-proxy]
transfer-idle-timeout`` without progress and close the connection, so a stalled client holds
nothing (no thread, no lock, no reservation) for longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from aiohttp import web

from .keys import SERVICES

T = TypeVar("T")
DEFAULT_IDLE_TIMEOUT = 60.0
BODY_CHUNK = 1 << 20
#: How soon :func:`drained` first looks at a transport's buffer again, and the longest pause.
DRAIN_POLL, DRAIN_POLL_MAX = 0.002, 0.1


class ClientGone(ConnectionError):
    """The client hung up, or sent or read nothing for longer than the idle timeout."""


def idle_timeout(request: web.Request) -> float:
    found = request.app.get(SERVICES)
    if found is None:
        return DEFAULT_IDLE_TIMEOUT
    return found.settings.transfer_idle_timeout.total_seconds()


def cut(transport: Any) -> None:
    """End a connection, safely even while a sendfile is blocked on it: the socket is shut down
    (a blocked send then fails and unwinds through asyncio's own paths, and reads see EOF); the
    transport closes as those errors surface.  Aborting the transport at once instead would tear
    it down under a running sendfile (which asyncio then trips over)."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is None:
        transport.abort()
        return
    with contextlib.suppress(OSError):
        # on a duplicate: uvloop's transports give a pseudo-socket that cannot shut down
        with socket.socket(fileno=os.dup(sock.fileno())) as same:
            same.shutdown(socket.SHUT_RDWR)


async def drained(transport: Any) -> None:
    """Wait until every byte written to the transport is sent (a client gone raises
    ClientGone; a caller bounds the wait, :func:`bounded`, and cuts a client that stalls).
    Looked at after 2 ms, then ever less often (at most ``DRAIN_POLL_MAX`` apart): a client that
    reads is waited for briefly, one that stalls costs a wake-up every tenth of a second."""
    pause = DRAIN_POLL
    while True:
        if transport is None or transport.is_closing():
            raise ClientGone("the client went away")
        if transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, DRAIN_POLL_MAX)


async def bounded(transport: Any, work: Awaitable[T], idle: float, what: str) -> T:
    """Await one step of a transfer for at most ``idle`` seconds.

    On a timeout — or when this task is cancelled (shutdown) — the connection is cut first and
    the step is then awaited to its end (it fails with a connection error): the step itself is
    never cancelled, so no aiohttp or asyncio waiter is left behind with an error nobody reads.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=idle)
    except asyncio.CancelledError:
        cut(transport)
        await asyncio.gather(task, return_exceptions=True)
        raise
    if not done:
        cut(transport)
        await asyncio.gather(task, return_exceptions=True)
        if transport is not None:
            transport.abort()
        raise ClientGone(f"the client {what} nothing for {idle:.0f}s")
    return task.result()


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, each chunk within the idle timeout.

    Chunks are taken one at a time as the connection received them (``readchunk``: ``readany``
    joins whatever is buffered into one new bytes object, a copy of the whole body that nobody
    needs -- writers keep chunks as they are), and the idle timeout is set only on a read that
    has to wait."""
    idle = idle_timeout(request)
    content = request.content
    while True:
        step = content.readchunk()
        if _ready(content):
            chunk, boundary = await step  # bytes (or the end) are there: nothing to wait for
        else:
            chunk, boundary = await bounded(request.transport, step, idle, "sent")
        if chunk:
            yield chunk
        elif not boundary:  # (an empty chunk at a chunked-encoding boundary is not the end)
            return


def _ready(content: Any) -> bool:
    """Whether a read of ``content`` returns without waiting (aiohttp's StreamReader; a reader
    without its buffer in view is always waited for with the timeout)."""
    return bool(getattr(content, "_buffer", None)) or content.is_eof()


async def write_chunk(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Write to a prepared response; the client must take it within the idle timeout."""
    await bounded(request.transport, response.write(data), idle_timeout(request), "read")
