"""The fast lane: ``GET /download?token=…`` of a small file without aiohttp's request machinery.

Datasets are many small files, and on a small file aiohttp's own work per request (a request
and a response object, a task, the middleware chain, the writer) costs more than the rules and
the read together.  The client listener's connections are aiohttp's, with one change
(:class:`LaneHandler`): when a connection is idle and aiohttp's parser hands over a request
that is a plain download — ``GET``, HTTP/1.1, only a token in the query, no body, no range or
condition — the lane runs the download's own service step (:func:`.download.open_requested`:
the token redeemed, the one permission check, the file opened beneath the vfolder root, the
audit line) and, for a small file whose bytes it then holds, writes the same answer the handler
would (:func:`.download.small_headers`) in one write, counted in the same request metrics and
access log.

Everything else is aiohttp's, unchanged: any other request; a refusal or an error (the handler
gets the outcome the lane met and answers it — one audit line, the usual problem and dialect);
a large file, a directory, an object store's stream (the handler sends what the lane opened).
Order is kept: the lane only takes a request while aiohttp has nothing queued or in progress on
that connection, and holds aiohttp back while its own answer is pending.  It steps aside while
the daemon drains and while the client is not reading its answers.
Malformed requests never reach it: aiohttp's parser sees every byte first.

It relies on aiohttp's connection handler internals (tested with the release pinned in
``pyproject.toml``); where they differ the lane is off and aiohttp serves everything.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from ...core import caller
from ...services.facade import Services
from ...services.files import Download
from ..inflight import InflightRequests
from ..problem import RequestLogger, new_request_id
from .download import (
    CONDITIONAL,
    SMALL_FILE,
    download_name_headers,
    open_requested,
    small_headers,
)

log = logging.getLogger(__name__)

_PREFIX = "/download?token="
#: A token the lane takes as it is (JWTs are base64url and dots); anything else (escapes, more
#: parameters) goes to aiohttp, which parses queries in full.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{1,8192}")
#: A client's request id the lane echoes itself (printable ASCII); any other goes to aiohttp.
_REQUEST_ID = re.compile(r"[\x20-\x7e]{0,1024}")
#: Headers that make a download more than a plain one (or give it a body).
_NOT_PLAIN = (
    *CONDITIONAL,
    "Content-Length",
    "Transfer-Encoding",
    "Expect",
    "Upgrade",
)
#: What of aiohttp's connection handler the lane works with.
_INTERNALS = (
    "_waiter",
    "_messages",
    "_parser",
    "_payload_parser",
    "_upgraded",
    "_force_close",
    "_close",
    "_keepalive",
    "_keepalive_timeout",
    "_next_keepalive_close_time",
    "_keepalive_handle",
    "_process_keepalive",
    "_buffer_paused",
    "_msg_queue_resume_size",
    "_resume_reading_if_drained",
    "_logging_enabled",
)


def lane_fits(handler_class: type[RequestHandler] = RequestHandler) -> bool:
    """Whether this aiohttp's connection handler has what the lane works with."""
    probe = set(dir(handler_class))
    for klass in handler_class.__mro__:
        probe.update(getattr(klass, "__slots__", ()))
    return all(name in probe for name in _INTERNALS)


class FastLane:
    """The lane of one client listener in one worker."""

    def __init__(self, services: Services, inflight: InflightRequests) -> None:
        self.services = services
        self.inflight = inflight
        metrics = services.metrics
        labels = ("GET", "/download", "download", "200", "")
        self._count = metrics.requests.labels(*labels)
        self._time = metrics.duration.labels(*labels)
        self._bytes = metrics.downloaded.labels("client")
        self.answered = 0  # requests this lane answered itself
        self.handed = 0  # requests whose outcome it handed to aiohttp
        self._date = (0, "")

    def token_of(self, handler: LaneHandler, message: Any) -> str | None:
        """The token of a plain download the lane may take now (None: aiohttp's)."""
        if getattr(message, "path", None) is None:
            return None  # a parse error (aiohttp's marker of one): aiohttp answers it
        if (
            message.method != "GET"
            or message.version != HttpVersion11
            or message.should_close
            or message.upgrade
            or message.chunked
            or not message.path.startswith(_PREFIX)
            or self.inflight.draining
            or handler.writing_paused
            or (handler._logging_enabled and not isinstance(handler.access_logger, RequestLogger))
        ):
            return None
        token = message.path[len(_PREFIX) :]
        if not _TOKEN.fullmatch(token):
            return None
        headers = message.headers
        if any(name in headers for name in _NOT_PLAIN):
            return None
        rid = headers.get("X-Request-ID")
        if rid is not None and not _REQUEST_ID.fullmatch(rid):
            return None  # written back as it came: aiohttp's writer deals with any bytes
        return token

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    def answer(self, handler: LaneHandler, rid: str, opened: Download, took: float) -> bool:
        """Write a small file's whole answer; False when it is not one (aiohttp sends it)."""
        local = opened.local
        if local is None or local.body is None or opened.tree is not None:
            return False
        body = local.body
        lines = ["HTTP/1.1 200 OK"]
        for name, value in small_headers(local, *download_name_headers(opened.name)).items():
            if "\r" in value or "\n" in value:
                return False
            lines.append(f"{name}: {value}")
        lines.append(f"X-Request-ID: {rid}")
        lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Date: {self.date()}")
        lines.append(f"Server: {SERVER_SOFTWARE}")
        closing = self.inflight.draining  # accepted before the drain: answered, then closed
        if closing:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        transport = handler.transport
        if transport is None or transport.is_closing():
            return False  # aiohttp sees the connection go
        transport.write(head + body)
        opened.close()
        if closing:
            handler.force_close()  # the transport sends what it holds, then closes
        access = handler.access_logger
        if handler._logging_enabled and isinstance(access, RequestLogger):
            peer = transport.get_extra_info("peername")
            remote = str(peer[0]) if isinstance(peer, tuple | list) and peer else None
            access.line(remote, "GET", "/download", 200, took, None, rid)
        self.answered += 1
        self._count.inc()
        self._time.observe(took)
        self._bytes.inc(len(body))
        return True


class LaneHandler(RequestHandler):
    """aiohttp's connection handler, with the fast lane in front of its request queue."""

    __slots__ = ("_lane", "_lane_task", "_carried")

    def __init__(self, *args: Any, lane: FastLane, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lane = lane
        self._lane_task: asyncio.Task[None] | None = None
        #: (the message, what the lane met for it) until aiohttp's handler takes it
        self._carried: tuple[RawRequestMessage, Download | Exception] | None = None

    # -- aiohttp's side --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._lane_task is None and not self._parked():
            super().data_received(data)  # aiohttp is at work (or has work queued): its turn
            return
        # aiohttp is parked (or waits behind the lane): parse, but do not wake it yet
        waiter, self._waiter = self._waiter, None
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        if self._lane_task is None:
            self._next()

    def connection_lost(self, exc: BaseException | None) -> None:
        # The lane's task is not cancelled (aiohttp does not cancel its handlers either): a
        # descriptor being opened in a thread would be lost; it ends and finds the connection gone.
        carried, self._carried = self._carried, None
        if carried is not None and isinstance(carried[1], Download):
            _discard(carried[1])
        super().connection_lost(exc)

    def take_carried(self, request: web.BaseRequest) -> Download | None:
        """What the lane met for this request (the next one aiohttp handles after the lane
        handed it over): the opened download, or its error raised."""
        carried = self._carried
        if carried is None:
            return None
        message = carried[0]
        if request.method != message.method or request.raw_path != message.path:
            return None
        self._carried = None
        if isinstance(carried[1], Exception):
            raise carried[1]
        return carried[1]

    # -- the lane ----------------------------------------------------------------------------
    def _parked(self) -> bool:
        """aiohttp waits for a request with nothing queued, none in progress, nothing held."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and not self._messages
            and not self._request_in_progress
            and self._carried is None
            and not self._buffer_paused
            and not self._force_close
            and not self._close
        )

    def _next(self) -> None:
        """Take the one queued request if it is the lane's, else let aiohttp have the queue: the
        lane never answers a request while another one waits before it (pipelined requests
        beyond the first are aiohttp's, in order)."""
        messages = self._messages
        if (
            len(messages) == 1
            and self._carried is None  # (else it is the one handed to aiohttp)
            and not self._buffer_paused
            and self.transport is not None
        ):
            message, payload = messages[0]
            token = self._lane.token_of(self, message)
            if token is not None:
                messages.popleft()
                parser = self._parser
                if parser is not None:
                    parser.message_consumed()  # as aiohttp does when it takes a request
                self._start(message, payload, token)
                return
        waiter = self._waiter
        if messages and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _start(self, message: Any, payload: StreamReader, token: str) -> None:
        lane = self._lane
        lane.inflight.begin(self.transport)
        handle, self._keepalive_handle = self._keepalive_handle, None
        if handle is not None:  # an answer is being made: not an idle connection
            handle.cancel()
        try:
            serving = self._serve(message, payload, token)
            self._lane_task = asyncio.get_running_loop().create_task(serving)
        except BaseException:
            lane.inflight.end(self.transport)
            raise

    async def _serve(self, message: Any, payload: StreamReader, token: str) -> None:
        """The download's service step, in a task of its own as aiohttp runs a handler; then
        the answer, or the hand-over; then what queued meanwhile."""
        started = time.perf_counter()
        rid = message.headers.get("X-Request-ID")
        rid = rid[:64] if rid else new_request_id()
        caller.enter(caller.Caller("client", "anonymous", rid))
        transport = self.transport
        outcome: Download | Exception | None = None
        try:
            try:
                outcome = await open_requested(self._lane.services, token, False, SMALL_FILE)
            except Exception as e:
                outcome = e
            finally:
                self._lane_task = None
            if self.transport is None or self._force_close:  # the client went meanwhile
                return
            self._finish(message, payload, rid, outcome, started)
            outcome = None  # answered, or aiohttp has it
        except Exception:  # a bug of ours: the connection is cut, never left hanging
            log.exception("fast lane: request %s failed; closing its connection", rid)
            self.force_close()
        finally:
            if isinstance(outcome, Download):
                _discard(outcome)
            self._lane.inflight.end(transport)
        if self.transport is not None:
            self._next()

    def _finish(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        rid: str,
        outcome: Download | Exception,
        started: float,
    ) -> None:
        lane = self._lane
        if isinstance(outcome, Download):
            if lane.answer(self, rid, outcome, time.perf_counter() - started):
                self._rearm()
                return
        # aiohttp answers it, with what the lane met and under the same request id
        if not message.headers.get("X-Request-ID"):
            headers = CIMultiDict(message.headers)
            headers["X-Request-ID"] = rid
            message = message._replace(headers=CIMultiDictProxy(headers))
        self._carried = (message, outcome)
        self._messages.appendleft((message, payload))
        lane.handed += 1

    def _rearm(self) -> None:
        """As aiohttp does once it has answered a request: the keep-alive clock restarted."""
        if self._keepalive and not self._close and not self._force_close:
            loop = self._loop
            close_time = loop.time() + self._keepalive_timeout
            self._next_keepalive_close_time = close_time
            if self._keepalive_handle is None:
                self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)


def _discard(opened: Download) -> None:
    """An opened download nobody will send: its descriptor closed, its zip's slot given back."""
    opened.close()
    if opened.tree is not None:
        asyncio.ensure_future(opened.tree.close())


class LaneSite(web.TCPSite):
    """A TCP site whose connections go through :class:`LaneHandler`."""

    def __init__(self, runner: web.AppRunner, *args: Any, lane: FastLane, **kwargs: Any) -> None:
        super().__init__(runner, *args, **kwargs)
        self._lane = lane

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        options = dict(server._kwargs)  # what aiohttp gives its own handlers

        def handler() -> LaneHandler:
            return LaneHandler(server, loop=loop, lane=self._lane, **options)

        self._server = await loop.create_server(
            handler,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
