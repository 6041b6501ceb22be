"""The one place domain errors become HTTP responses (RFC 9457 problem+json), plus request ids."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.abc import AbstractAccessLogger

from ..core.errors import StorageProxyError
from . import dialect
from .keys import SERVICES
from .streams import cut

log = logging.getLogger("storage_proxy.api")
access_log = logging.getLogger("storage_proxy.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Path segments that are credentials (a signed URL's token): masked in every log line.
_SECRET_SEGMENTS = re.compile(r"^(/signed)/[^/]+")


def safe_path(request: web.BaseRequest) -> str:
    """The request path as it may be logged: credentials in it masked, never the query."""
    return _SECRET_SEGMENTS.sub(r"\1/<token>", request.path)


PROBLEM_JSON = "application/problem+json"
REQUEST_ID = "request_id"


class PlainAnswer(Exception):
    """A door's answer that is not a problem: Backend.AI's own error shapes (``{"msg", "errno",
    "paths"}`` of a failed file operation), raised from inside a handler's call and sent as is."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def problem_response(
    status: int, code: str, title: str, detail: str, request_id: str | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:storage-proxy:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    if request_id:
        body["request_id"] = request_id
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


def error_response(
    err: StorageProxyError, request_id: str | None = None, request: web.Request | None = None
) -> web.Response:
    """The error as problem+json, worded as the request's dialect words it (``dialect``)."""
    body = err.to_problem()
    if request_id:
        body["request_id"] = request_id
    status, media = err.status, PROBLEM_JSON
    worded: dict[str, Any] | str = body
    if request is not None:
        status, worded, media = dialect.shape(request, body, status)
    if isinstance(worded, str):  # a release that answers this one as text/plain
        response = web.Response(text=worded, status=status, content_type=media)
    else:
        response = web.json_response(worded, status=status, content_type=media)
    response.headers.update(err.headers)
    return response


#: Request ids: this process's random prefix and a counter (unique, and cheaper than a uuid4).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):016x}"


def problem_answer(request: web.Request, e: Exception) -> web.StreamResponse | None:
    """What a request that failed with ``e`` answers (None: not ours to answer, raise it on)."""
    started = request.get(STARTED)
    if started is not None:
        # The status line and headers are out: a second answer would land in the body.
        return _break_off(request, started, e)
    return _answer(request, e)


def _answer(request: web.Request, e: Exception) -> web.StreamResponse | None:
    """The problem answering ``e`` (None: not ours to answer, raised on)."""
    rid = request.get(REQUEST_ID)
    if isinstance(e, StorageProxyError):
        request["error_code"] = e.code  # for the request metrics
        return error_response(e, rid, request)
    if isinstance(e, PlainAnswer):
        return e.response
    if isinstance(e, web.HTTPException):
        if e.status < 400 or e.content_type == PROBLEM_JSON:
            return None
        code = {404: "no-such-route", 405: "method-not-allowed"}.get(e.status, f"http-{e.status}")
        request["error_code"] = code
        resp = problem_response(e.status, code, e.reason, e.text or e.reason, rid)
        resp.headers.extend((k, v) for k, v in e.headers.items() if k.lower() == "allow")
        return resp
    if isinstance(e, _CLIENT_ERRORS):
        if not _client_gone(request):
            return None
        # The client hung up (mid-body, or before the answer): nothing to answer, not our error.
        request["error_code"] = "client-gone"
        request["client_gone"] = True
        gone = type(e).__name__
        log.info(
            "%s %s: the client went away (%s), id %s", request.method, safe_path(request), gone, rid
        )
        return problem_response(499, "client-gone", "Client went away", "connection lost", rid)
    log.exception("unhandled error (request %s %s, id %s)", request.method, safe_path(request), rid)
    return problem_response(
        500,
        "internal-error",
        "Internal server error",
        "see the daemon log for this request id",
        rid,
    )


_CLIENT_ERRORS = (ConnectionError, ClientPayloadError, asyncio.IncompleteReadError)
#: Where the response a handler has prepared (status and headers sent) is kept.
STARTED = "started_response"


def _break_off(
    request: web.Request, started: web.StreamResponse, e: Exception
) -> web.StreamResponse:
    """End a response that failed after it started: the connection is cut, so the client sees
    a short body (no closing chunk) — never a second status line inside the first body.  One
    log line for what a client or the storage may cause, a traceback only for a bug; counted."""
    gone = isinstance(e, _CLIENT_ERRORS) and _client_gone(request)
    code = e.code if isinstance(e, StorageProxyError) else "client-gone" if gone else "broken-off"
    request["error_code"] = code
    transport = request.transport
    cut(transport)
    if transport is not None:
        transport.abort()
    found = request.app.get(SERVICES)
    if found is not None:
        found.metrics.broken_off.labels(code).inc()
    what = (request.method, safe_path(request), started.status)
    rid = request.get(REQUEST_ID)
    if gone:
        log.info("%s %s: %d answer cut, the client went away, id %s", *what, rid)
    elif isinstance(e, (StorageProxyError, OSError, *_CLIENT_ERRORS)):  # the storage, a client
        log.warning("%s %s: %d answer broken off (%s: %s), id %s", *what, code, e, rid)
    else:
        log.exception("%s %s: %d answer broken off by an error, id %s", *what, rid)
    return started


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class RequestLogger(AbstractAccessLogger):
    """One line per request: method, path (never the query: it may hold tokens), status, the
    error's stable code if any, id."""

    @property
    def enabled(self) -> bool:
        """aiohttp asks once per connection: with the access log off, nothing is formatted."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        code = request.get("error_code")
        self.line(
            request.remote,
            request.method,
            safe_path(request),
            response.status,
            time_,
            code if code and response.status >= 400 else None,
            request.get(REQUEST_ID, "-"),
        )

    def line(
        self,
        remote: str | None,
        method: str,
        path: str,
        status: int,
        seconds: float,
        code: str | None,
        request_id: str,
    ) -> None:
        """The line of one answered request (aiohttp's requests, and the fast lane's)."""
        self.logger.info(
            "%s %s %s %d %.1fms%s id=%s",
            remote,
            method,
            path,
            status,
            seconds * 1000,
            f" code={code}" if code else "",
            request_id,
        )


def monotonic_ms() -> float:
    return time.monotonic() * 1000
