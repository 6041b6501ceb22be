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

from ..core import caller
from ..core.errors import StorageProxyError
from . import dialect
from .keys import DOOR

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


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-ID") or new_request_id()
    request[REQUEST_ID] = rid[:64]
    # who is asking, for the audit log: the door now, the principal once it is authenticated
    caller.enter(caller.Caller(request.app.get(DOOR, "unknown"), "anonymous", request[REQUEST_ID]))
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-ID"] = request[REQUEST_ID]
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.get(REQUEST_ID)
    try:
        return await handler(request)
    except StorageProxyError as e:
        request["error_code"] = e.code  # for the request metrics
        return error_response(e, rid, request)
    except PlainAnswer as e:
        return e.response
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == PROBLEM_JSON:
            raise
        code = {404: "no-such-route", 405: "method-not-allowed"}.get(e.status, f"http-{e.status}")
        request["error_code"] = code
        resp = problem_response(e.status, code, e.reason, e.text or e.reason, rid)
        resp.headers.extend((k, v) for k, v in e.headers.items() if k.lower() == "allow")
        return resp
    except (ConnectionError, ClientPayloadError, asyncio.IncompleteReadError) as e:
        if not _client_gone(request):
            raise
        # The client hung up (mid-body, or before the answer): nothing to answer, not our error.
        request["error_code"] = "client-gone"
        request["client_gone"] = True
        gone = type(e).__name__
        log.info(
            "%s %s: the client went away (%s), id %s", request.method, safe_path(request), gone, rid
        )
        return problem_response(499, "client-gone", "Client went away", "connection lost", rid)
    except Exception:
        log.exception(
            "unhandled error (request %s %s, id %s)", request.method, safe_path(request), rid
        )
        return problem_response(
            500,
            "internal-error",
            "Internal server error",
            "see the daemon log for this request id",
            rid,
        )


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
        self.logger.info(
            "%s %s %s %d %.1fms%s id=%s",
            request.remote,
            request.method,
            safe_path(request),
            response.status,
            time_ * 1000,
            f" code={code}" if code and response.status >= 400 else "",
            request.get(REQUEST_ID, "-"),
        )


def monotonic_ms() -> float:
    return time.monotonic() * 1000
