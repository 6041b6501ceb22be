"""Bytes of an open file onto a client's connection without passing through Python: the one
``sendfile`` step of every download of a local file, on whichever event loop runs.

asyncio's loop has ``loop.sendfile`` (zero-copy on a plain socket, read-and-write over TLS).
uvloop's has not: there the step is taken here, the way asyncio takes it -- once aiohttp's bytes
(status, headers) are all on the wire, ``os.sendfile`` on a duplicate of the connection's
descriptor (a connection the loop closes meanwhile can never have its number reused under us),
waiting for the socket to take more between calls.  Over TLS the file is read in slices (in a
thread) and written through the transport, as fast as aiohttp's flow control lets it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from .streams import ClientGone, drained

#: Read-and-write slices where the kernel cannot send the file itself (TLS on uvloop): each
#: stalled client holds one, and its encrypted copy, until it is cut.
READ_SLICE = 64 << 10


async def send_slice(transport: Any, fd: int, offset: int, count: int) -> int:
    """Send up to ``count`` bytes of ``fd`` from ``offset``; returns how many were sent (fewer
    only if the file ended first).  A client gone raises a ConnectionError."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, asyncio.BaseEventLoop):
        # wraps the descriptor (no I/O): loop.sendfile wants a file object
        with open(fd, "rb", buffering=0, closefd=False) as file:  # noqa: ASYNC230
            return await loop.sendfile(transport, file, offset, count)
    await drained(transport)
    if transport.get_extra_info("sslcontext") is not None:
        return await _read_and_write(loop, transport, fd, offset, count)
    sock = transport.get_extra_info("socket")
    if sock is None:
        raise ClientGone("the client went away")
    dst = os.dup(sock.fileno())
    try:
        return await _sendfile_on(loop, dst, fd, offset, count)
    finally:
        os.close(dst)


async def _sendfile_on(
    loop: asyncio.AbstractEventLoop, dst: int, fd: int, offset: int, count: int
) -> int:
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(dst, fd, offset + sent, count - sent)
        except BlockingIOError:
            await _writable(loop, dst)
            continue
        if n == 0:  # the file ended
            break
        sent += n
    return sent


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _read_and_write(
    loop: asyncio.AbstractEventLoop, transport: Any, fd: int, offset: int, count: int
) -> int:
    # aiohttp's own flow control (the protocol is paused while the transport holds more than
    # its high-water mark): a stalled client costs no wake-ups, only its one slice
    flow = getattr(transport.get_protocol(), "_drain_helper", None)
    sent = 0
    while sent < count:
        data = await loop.run_in_executor(
            None, os.pread, fd, min(READ_SLICE, count - sent), offset + sent
        )
        if not data:
            break
        transport.write(data)
        sent += len(data)
        await (flow() if flow is not None else drained(transport))
    return sent
