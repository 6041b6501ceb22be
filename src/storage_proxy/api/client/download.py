"""``GET|HEAD /download?token=…`` and every other door's downloads: a file or a directory as zip.

A local file is sent from the descriptor the volume opened (zero-copy ``sendfile``; never the
path again, so nothing can be swapped in between), a directory is zipped from its held
descriptor, and an object store's file is streamed.  All three answer ranges, validators and
errors the same way (:mod:`..ranges`).  A client that stops reading for ``transfer-idle-timeout``
is disconnected; one that hangs up is not an error of ours (logged at debug, never a 500).
(:mod:`..streams` has the timeouts.)
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import logging
import mimetypes
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from ...core import caller
from ...core.files import LocalFile
from ...services.archive import FileDone, ZipSource, stream_zip
from ...services.facade import Services
from ...services.files import Download, etag_of
from ..dialect import speaks_backend_ai
from ..keys import RELAYS, services
from ..problem import safe_path
from ..ranges import Representation, content_disposition, preconditions, requested_range
from ..sendfile import send_slice
from ..streams import ClientGone, bounded, cut, idle_timeout, write_chunk

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
#: Files up to this size are read and answered in one step instead of through sendfile.
SMALL_FILE = 64 * 1024
#: What a send on a connection that was cut may fail with.
_GONE = (errno.EPIPE, errno.EBADF, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)
#: sendfile runs in slices, each of which must finish within the idle timeout.  A slice is sized
#: to take about ``SLICE_SECONDS`` (at most a quarter of the idle timeout) at the rate the file
#: has gone so far, and is at most twice the previous one: the first slices land in the
#: kernel's socket buffers at once and would make any reader look fast (a slice sized on that
#: took longer than the idle timeout for a client reading steadily at 4 MiB/s, which was then
#: cut as one that read nothing).  So "no progress for the idle timeout" means no MiB in that
#: time.
MIN_SLICE, MAX_SLICE, SLICE_SECONDS = 1 << 20, 1 << 30, 2.0


async def download(request: web.Request) -> web.StreamResponse:
    # the fast lane (``..fastlane``) may have opened it already, or met the refusal
    carried = getattr(request.protocol, "take_carried", None)
    opened = carried(request) if carried is not None else None
    if opened is None:
        archive = request.query.get("archive", "").lower() in _TRUE
        opened = await open_requested(
            services(request), request.query.get("token"), archive, small_read(request)
        )
    return await send(request, opened)


async def open_requested(
    found: Services, token: str | None, archive: bool, read_up_to: int
) -> Download:
    """What ``GET /download?token=…`` opens: the token's grant redeemed (its principal named
    in the audit log), then the file opened — or the directory, as a zip."""
    grant = found.transfers.redeem_download(token)
    caller.identify(grant.actor.principal)
    return await found.transfers.open_download(
        grant.actor, grant, archive=grant.archive or archive, read_up_to=read_up_to
    )


def small_read(request: web.Request) -> int:
    """How much of a file to read when it is opened (small files skip sendfile's set-up)."""
    return SMALL_FILE if "Range" not in request.headers else 0


async def send(request: web.Request, opened: Download) -> web.StreamResponse:
    """Every door's downloads: an opened local file, a zip of a directory, or a stream."""
    if opened.tree is not None:
        return await send_zip(request, opened.tree, opened.name)
    if opened.local is not None:
        with opened.local as local:
            return await send_local(request, local, opened.name)
    entry = opened.entry
    assert entry is not None
    size, modified = entry.stat.size, entry.stat.modified
    rep = Representation(etag_of(modified, size), modified, size)
    return await _send_stream(request, opened, rep)


@functools.lru_cache(maxsize=4096)
def _name_headers(name: str) -> tuple[str, str]:
    """Content-Disposition and Content-Type of a file name (datasets repeat names and types)."""
    return _disposition(name), mimetypes.guess_type(name)[0] or "application/octet-stream"


@functools.lru_cache(maxsize=4096)
def _disposition(name: str) -> str:
    return content_disposition(name)


@functools.lru_cache(maxsize=1024)
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _typed(request: web.Request, name: str) -> tuple[str, str]:
    """Content-Disposition and Content-Type for this request: on ``/download`` every file is
    ``application/octet-stream``, as both Backend.AI releases send it."""
    disposition, content_type = _name_headers(name)
    if request.path == "/download" and speaks_backend_ai(request):
        return disposition, "application/octet-stream"
    return disposition, content_type


def _headers(request: web.Request, rep: Representation, name: str) -> dict[str, str]:
    disposition, content_type = _typed(request, name)
    return {
        "ETag": rep.etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": disposition,
        "Content-Type": content_type,
    }


#: A request with any of these is answered by the full range/precondition logic, not the fast
#: path (nor the fast lane).
CONDITIONAL = (
    "Range",
    "If-Range",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
)


def _small_response(request: web.Request, local: LocalFile, name: str) -> web.Response | None:
    """A small file read whole, for a plain GET: one response object, headers and body written
    in one go by aiohttp (no stream to prepare, no write to bound: nothing is held open while
    it goes out). None when the request needs more (a range, a condition, a HEAD)."""
    body = local.body
    headers = request.headers
    if body is None or request.method != "GET" or any(h in headers for h in CONDITIONAL):
        return None
    return web.Response(body=body, headers=small_headers(local, *_typed(request, name)))


def small_headers(local: LocalFile, disposition: str, content_type: str) -> dict[str, str]:
    """The headers of a small file's whole answer (this handler's and the fast lane's)."""
    st = local.stat
    return {
        "ETag": etag_of(st.st_mtime_ns, st.st_size),
        "Accept-Ranges": "bytes",
        "Content-Disposition": disposition,
        "Content-Type": content_type,
        "Last-Modified": _http_date(int(st.st_mtime)),
    }


def download_name_headers(name: str) -> tuple[str, str]:
    """Content-Disposition and Content-Type of ``GET /download`` (Backend.AI's door: every file
    is ``application/octet-stream``)."""
    return _disposition(name), "application/octet-stream"


def _answer(
    request: web.Request, rep: Representation, name: str
) -> tuple[web.StreamResponse, int, int]:
    """The response to prepare and the byte span to send; 304 or 412 answered here."""
    headers = _headers(request, rep, name)
    status = preconditions(request, rep)
    if status is not None:
        response = web.StreamResponse(status=status, headers=headers)
        response.last_modified = rep.modified
        return response, 0, 0
    span = requested_range(request, rep)
    response = web.StreamResponse(status=206 if span else 200, headers=headers)
    response.last_modified = rep.modified
    start, end = span or (0, rep.size - 1)
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{rep.size}"
    count = max(0, end - start + 1)
    response.content_length = count
    return response, start, count


async def send_local(request: web.Request, local: LocalFile, name: str) -> web.StreamResponse:
    """A regular file from its open descriptor: small ones in one write, the rest sendfile'd."""
    small = _small_response(request, local, name)
    if small is not None:
        return small
    st = local.stat
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    rep = Representation(etag_of(st.st_mtime_ns, st.st_size), modified, st.st_size)
    response, start, count = _answer(request, rep, name)
    if response.status not in (200, 206) or request.method == "HEAD" or count == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    if local.body is not None:
        await response.prepare(request)
        await write_chunk(request, response, local.body[start : start + count])
        await response.write_eof()
        return response
    await response.prepare(request)
    try:
        await _sendfile(request, local.fd, start, count, idle_timeout(request))
        await response.write_eof()
    except OSError as e:  # ClientGone and the other ConnectionErrors included
        if not isinstance(e, ConnectionError) and e.errno not in _GONE:
            raise
        _gone(request, e)
    return response


async def _sendfile(request: web.Request, fd: int, offset: int, count: int, idle: float) -> None:
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ClientGone("the client went away")
    loop = asyncio.get_running_loop()
    sent, size, began = 0, MIN_SLICE, loop.time()
    target = min(SLICE_SECONDS, idle / 4)
    while sent < count:
        want = min(size, count - sent)
        if transport.is_closing():
            raise ClientGone("the connection is closing")
        n = await bounded(transport, send_slice(transport, fd, offset + sent, want), idle, "read")
        if n < want:  # the file shrank under us: the promised length cannot be kept
            cut(transport)
            raise ClientGone("the file changed while it was being sent")
        sent += n
        rate = sent / max(loop.time() - began, 1e-3)
        size = int(min(MAX_SLICE, 2 * want, max(MIN_SLICE, rate * target)))


def _gone(request: web.Request, error: BaseException) -> None:
    request["client_gone"] = True
    log.debug("%s %s: client gone: %s", request.method, safe_path(request), error)


async def _pump(
    request: web.Request, response: web.StreamResponse, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    """Write a stream out, bounded by the idle timeout; a client gone is not an error."""
    try:
        async for chunk in chunks:
            await write_chunk(request, response, chunk)
        await response.write_eof()
    except ConnectionError as e:  # ClientGone included
        _gone(request, e)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # the source's files are closed now, not when collected
    return response


def zip_response(filename: str) -> web.StreamResponse:
    return web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": content_disposition(filename),
        }
    )


async def send_zip(request: web.Request, source: ZipSource, filename: str) -> web.StreamResponse:
    response = zip_response(filename)
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        return await _pump(request, response, stream_zip(source))
    finally:
        await source.close()


async def pump_zip(
    request: web.Request, response: web.StreamResponse, source: ZipSource, done: FileDone
) -> None:
    """Stream an archive into a prepared response, telling ``done`` of each file; a client
    gone raises ClientGone (the archive is not complete)."""
    await _pump(request, response, stream_zip(source, done))
    if request.get("client_gone"):
        raise ClientGone("the client went away before the archive was complete")


async def _send_stream(
    request: web.Request, opened: Download, rep: Representation
) -> web.StreamResponse:
    """Backends without local files (object stores): ranges handled here, bytes streamed."""
    response, start, count = _answer(request, rep, opened.name)
    sending = response.status in (200, 206) and request.method != "HEAD" and count > 0
    relays = request.app.get(RELAYS)
    raw = None
    if sending and relays is not None and relays.can_take(request, count):
        raw = await opened.open_raw(start, count)
    try:
        await response.prepare(request)
    except BaseException:
        if raw is not None:
            raw.close()
        raise
    if not sending:
        await response.write_eof()
        return response
    if raw is None or relays is None:
        return await _pump(request, response, opened.read(start, count))
    try:
        await relays.send(request, response, raw)  # owns raw from here on
        services(request).metrics.relayed.inc(count)
        await response.write_eof()
    except ConnectionError as e:  # ClientGone included
        _gone(request, e)
    return response


__all__ = ["ClientGone", "download", "pump_zip", "send", "send_local", "send_zip", "zip_response"]
