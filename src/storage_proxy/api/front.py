"""The front door every request of an API passes: its id, its metrics, errors as problems.

One middleware instead of one per concern: aiohttp runs each middleware as a coroutine of its
own, and on a small file's download those frames cost as much as the file's own read.  What
each step does is unchanged and still lives where it belongs (:mod:`.problem` words errors,
:mod:`.metrics` counts); this only calls them in order:

    request id + caller → timing → [an API's own wrap, by path prefix] → handler
    → an error answered as a problem → counted and timed → X-Request-ID on the answer
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..core import caller
from .keys import DOOR
from .metrics import ERROR_CODE, DaemonMetrics
from .problem import REQUEST_ID, STARTED, Handler, new_request_id, problem_answer

#: A wrap around the handlers of one path prefix (the client API's tus headers).
Wrap = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def front_door(metrics: DaemonMetrics, around: tuple[str, Wrap] | None = None) -> Middleware:
    """The middleware of one API; ``around``: (path prefix, wrap) for the requests under it."""
    prefix, wrap = around if around is not None else ("\0", None)

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get("X-Request-ID")
        rid = rid[:64] if rid else new_request_id()
        request[REQUEST_ID] = rid
        # who is asking, for the audit log: the door now, the principal once authenticated
        caller.enter(caller.Caller(request.app.get(DOOR, "unknown"), "anonymous", rid))
        start = time.perf_counter()
        status, detail = 500, "internal-error"
        try:
            try:
                if wrap is not None and request.path.startswith(prefix):
                    response = await wrap(request, handler)
                else:
                    response = await handler(request)
            except Exception as e:
                answer = problem_answer(request, e)
                if answer is None:
                    raise
                response = answer
            status = response.status
            detail = request.get(ERROR_CODE, "") if status >= 400 else ""
        except web.HTTPException as e:
            status, detail = e.status, e.reason
            raise
        finally:
            metrics.record_request(request, status, detail, time.perf_counter() - start)
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
        return response

    return front


def on_prepare(metrics: DaemonMetrics | None) -> Callable[..., Awaitable[None]]:
    """The one ``on_response_prepare`` hook: from now on an error cannot be answered, only
    broken off (:func:`.problem.problem_answer`); file responses are counted (``metrics``)."""

    async def prepared(request: web.Request, response: web.StreamResponse) -> None:
        request[STARTED] = response
        if metrics is not None:
            metrics.count_download(request, response)

    return prepared
