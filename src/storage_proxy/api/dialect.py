"""How an error looks on the wire in each dialect (``core.dialect``): the one table per release.

The daemon's own errors carry a stable ``code`` (``core.errors``).  In the 23.09 dialect the
doors a Backend.AI manager and its clients use answer parameter errors (a refused path, token
or body) as storage-proxy 23.9.10 does (``…/probs/storage/invalid-api-params`` with ``data``)
and a refused auth token as a text/plain 403; where 23.9.10 answers a user error with a 500
(an unknown volume, a missing vfolder, a duplicate) the daemon's own problem goes out
(``urn:storage-proxy:problem:<code>``).  In the 26.09 dialect the doors a
Backend.AI manager and its clients use — the whole manager listener, and ``/download``,
``/download-archive`` and a token-addressed ``/upload`` on the client listener — answer with
storage-proxy 26.9.6's problem ``type`` URIs, its status where it differs (an unknown volume is a
400 there) and its ``error_code``: today's manager reads the domain out of ``error_code`` to tell
a missing quota scope (``quota-scope_…``) from a missing vfolder, and handles a body without one
as a vfolder error by its status.  Codes 26.9.6 has no word for keep their own ``urn:`` type and
no ``error_code``, so the manager handles them by status, as it does any vfolder error.

Our own fields (``status``, ``code``, ``detail``, ``request_id``) stay in every body: a reader
of either release finds what it looks for, and ours too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..core.dialect import Dialect, Wire
from .keys import DOOR, SERVICES

PROBS = "https://api.backend.ai/probs/"


@dataclass(frozen=True, slots=True)
class WireProblem:
    """What 26.9.6 answers for one of our error codes."""

    status: int
    type: str
    error_code: str | None = None
    #: 26.9.6 answers this one with a bare ``{"msg": …}`` (application/json), not a problem.
    plain_msg: bool = False
    #: 26.9.6's ``title`` (ours is kept in the 23.09 dialect).
    title: str | None = None
    #: 26.9.6 adds ``msg`` (the failure in words): ours is our ``detail``.
    msg: bool = False
    #: 26.9.6 adds ``data``: ``"errors"`` the refused parameters by name (as our ``errors``),
    #: ``"detail"`` the failure in words, any other word ``{word: detail}``.
    data: str | None = None
    #: The answer is this text (text/plain), not a problem.
    text: str | None = None


def _storage(
    path: str, status: int = 400, error_code: str | None = None, **words: Any
) -> WireProblem:
    return WireProblem(status, f"{PROBS}storage/{path}", error_code, **words)


_INVALID_API_PARAMS = _storage("invalid-api-params", title="Invalid API parameters", data="errors")
_INVALID_API_CALL = _storage(
    "invalid-api-params",
    400,
    "storage-proxy_request_invalid-parameters",
    title="Invalid API parameters",
    msg=True,
)
_BAD_REQUEST_BODY = WireProblem(
    400,
    f"{PROBS}generic-bad-request",
    "api_parsing_invalid-parameters",
    title="Invalid or Missing API Parameters.",
    msg=True,
)
_FORBIDDEN = "Forbidden (missing auth token)", "Forbidden (invalid auth token)"

#: Our code -> 26.9.6's answer, on the manager listener and the Backend.AI client routes.
BAI_26_09: dict[str, WireProblem] = {
    "invalid-parameter": _INVALID_API_PARAMS,
    "malformed-body": _INVALID_API_PARAMS,
    "invalid-token": _storage(  # a token is a query parameter there
        "invalid-api-params", title="Invalid API parameters", data="token"
    ),
    "invalid-token-claims": _storage(
        "invalid-api-params", title="Invalid API parameters", data="token"
    ),
    "invalid-auth-token": _storage("forbidden", 403, title=_FORBIDDEN[1]),
    "invalid-path": _storage(
        "subpath/invalid",
        400,
        "vfolder_access_invalid-parameters",
        title="Invalid Subpath",
        msg=True,
        data="detail",
    ),
    "volume-not-found": _storage(
        "volume/invalid", 400, "storage_access_invalid-parameters", title="Invalid Volume", msg=True
    ),
    "vfolder-not-found": _storage(
        "vfolder/not-found", 404, "vfolder_read_not-found", title="VFolder Not Found", msg=True
    ),
    "quota-scope-not-found": _storage(
        "quota/scope/not-found",
        404,
        "quota-scope_read_not-found",
        title="Quota Scope Not Found",
        msg=True,
    ),
    "quota-scope-exists": WireProblem(
        409, f"{PROBS}storage/quota/scope/already-exists", None, plain_msg=True
    ),
    "file-not-found": _storage("file-not-found", 404, title="File not found"),
    "is-a-directory": _INVALID_API_CALL,
    "not-supported": _storage(
        "unsupported-operation", title="Unsupported operation by the storage backend"
    ),
    "unsupported-operation": _storage(
        "unsupported-operation", title="Unsupported operation by the storage backend"
    ),
    "upload-offset-mismatch": _storage(
        "upload-offset-mismatch",
        409,
        "storage-proxy_update_conflict",
        title="Upload Offset Mismatch",
        msg=True,
    ),
}

#: Our code -> 23.9.10's answer; codes it answers with a 500 are not here (ours go out).
BAI_23_09: dict[str, WireProblem] = {
    "invalid-parameter": _INVALID_API_PARAMS,
    "malformed-body": _INVALID_API_PARAMS,
    "invalid-token": BAI_26_09["invalid-token"],
    "invalid-token-claims": BAI_26_09["invalid-token-claims"],
    "invalid-auth-token": WireProblem(403, "", text="403: Forbidden"),
    # its path parameters refuse an absolute path (a '..' one is a 500 there)
    "invalid-path": _storage("invalid-api-params", title="Invalid API parameters", data="relpath"),
}

#: Routes 26.9.6 parses with its pydantic handlers: other words for the same mistakes.
_PYDANTIC_ROUTES: dict[str, dict[str, WireProblem]] = {
    route: {
        "invalid-parameter": _BAD_REQUEST_BODY,
        "malformed-body": WireProblem(
            400,
            f"{PROBS}generic-bad-request",
            "api_parsing_bad-request",
            title="Malformed request body.",
            msg=True,
        ),
        "invalid-token": WireProblem(
            400,
            f"{PROBS}jwt-decode-error",
            "auth_auth_bad-request",
            title="Failed to decode JWT token.",
            msg=True,
        ),
        "invalid-token-claims": WireProblem(
            400,
            f"{PROBS}jwt-payload-validation-error",
            "auth_auth_invalid-parameters",
            title="JWT payload validation failed.",
            msg=True,
        ),
        "invalid-path": _INVALID_API_CALL,
    }
    for route in (
        "/folder/file/archive-download-token",
        "/folder/file/delete-async",
        "/download-archive",
    )
}
#: An absolute path is a parameter error there (its schema's), a '..' one a subpath error.
_PYDANTIC_ROUTES["/folder/file/fetch"] = {
    "invalid-path": _storage("invalid-api-params", title="Invalid API parameters", data="relpath")
}

#: Client-listener routes a Backend.AI client uses (the rest of that listener is our own API).
_BAI_CLIENT_PATHS = frozenset({"/", "/status", "/download", "/download-archive"})


def dialect_of(request: web.Request) -> Dialect:
    services = request.app.get(SERVICES)
    return services.settings.dialect if services is not None else Dialect.BAI_23_09


def speaks_backend_ai(request: web.Request) -> bool:
    """Whether this request came through a door a Backend.AI manager or client uses."""
    door = request.app.get(DOOR)
    if door == "manager":
        return True
    if door != "client":
        return False
    return request.path in _BAI_CLIENT_PATHS or (
        request.path == "/upload" and "token" in request.query
    )


def wire(request: web.Request) -> Wire:
    """Where this request's dialect answers otherwise than the other (``core.dialect.Wire``)."""
    return dialect_of(request).wire


_TABLES = {
    Dialect.BAI_26_09: (BAI_26_09, _PYDANTIC_ROUTES),
    Dialect.BAI_23_09: (BAI_23_09, {}),
}


def wire_problem(request: web.Request, code: str) -> WireProblem | None:
    """The reference release's answer for ``code`` on this request, or None to answer as
    ourselves."""
    if not speaks_backend_ai(request):
        return None
    table, routes = _TABLES[dialect_of(request)]
    override = routes.get(request.path, {}).get(code)
    return override or table.get(code)


def shape(
    request: web.Request, body: dict[str, Any], status: int
) -> tuple[int, dict[str, Any] | str, str]:
    """A problem body as this request's dialect words it: (status, body, media type); the body
    is text where the release answers text/plain."""
    found = wire_problem(request, str(body.get("code", "")))
    if found is None:
        return status, body, "application/problem+json"
    if found.text is not None:
        return found.status, found.text, "text/plain"
    if found.plain_msg:
        return (
            found.status,
            {"msg": body.get("detail"), "code": body.get("code")},
            "application/json",
        )
    worded = {**body, "type": found.type, "status": found.status}
    if found.error_code is not None:
        worded["error_code"] = found.error_code
    if found.title is not None:
        worded["title"] = found.title
    if found.title == _FORBIDDEN[1] and str(body.get("detail", "")).startswith("missing"):
        worded["title"] = _FORBIDDEN[0]
    if found.msg:
        worded["msg"] = body.get("detail")
    if found.data == "errors":
        worded["data"] = body.get("errors", {})
    elif found.data == "detail":
        worded["data"] = body.get("detail")
    elif found.data is not None:
        worded["data"] = {found.data: body.get("detail")}
    return found.status, worded, "application/problem+json"
