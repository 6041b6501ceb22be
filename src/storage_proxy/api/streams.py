"""Bodies in and out, bounded in time: a client that stalls is dropped, one that leaves is no error.

Every door that receives a body reads it through :func:`body_chunks` and every door that sends
one writes through :func:`write_chunk`; both give up after ``[storage-proxy]
transfer-idle-timeout`` without progress and close the connection, so a stalled client holds
nothing (no thread, no lock, no reservation) for longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .keys import ROOT_CTX

DEFAULT_IDLE_TIMEOUT = 60.0
BODY_CHUNK = 1 << 20


class ClientGone(ConnectionError):
    """The client hung up, or sent or read nothing for longer than the idle timeout."""


def idle_timeout(request: web.Request) -> float:
    sp = request.app[ROOT_CTX].config.get("storage-proxy", {})
    value = sp.get("transfer-idle-timeout")
    return value.total_seconds() if value is not None else DEFAULT_IDLE_TIMEOUT


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, each chunk within the idle timeout."""
    idle = idle_timeout(request)
    content = request.content
    while True:
        try:
            chunk = await asyncio.wait_for(content.readany(), idle)
        except TimeoutError:
            _drop(request)
            raise ClientGone(f"the client sent nothing for {idle:.0f}s") from None
        if not chunk:
            return
        yield chunk


async def write_chunk(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Write to a prepared response; the client must take it within the idle timeout."""
    idle = idle_timeout(request)
    try:
        await asyncio.wait_for(response.write(data), idle)
    except TimeoutError:
        _drop(request)
        raise ClientGone(f"the client read nothing for {idle:.0f}s") from None
