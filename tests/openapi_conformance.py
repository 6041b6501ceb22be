"""Every response the in-process daemon gives the test suite, checked against the description the
daemon serves at ``/openapi.json`` — so the description cannot drift from the code.

A middleware (outermost) looks at each request the router matched: its route (method and path
pattern) must be described; a 1xx–3xx status must be listed for that operation (errors fall to
the ``default`` problem+json response); a body's media type must be one the status declares; a
JSON body is validated by ``openapi-core`` against the schema.  Violations are collected and the
fixture that installed the checker fails the test that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.testing import MockResponse

from storage_proxy.api.problem import Handler


@dataclass
class _Request:
    """What openapi-core needs of a request, with the route's own pattern (no path matching)."""

    host_url: str
    path: str
    path_pattern: str
    method: str
    parameters: RequestParameters
    body: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Conformance:
    spec: dict[str, Any]
    violations: list[str] = field(default_factory=list)
    checked: int = 0

    def __post_init__(self) -> None:
        self._openapi = OpenAPI.from_dict(self.spec)

    def install(self, app: web.Application) -> web.Application:
        app.middlewares.insert(0, self.middleware)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as e:  # redirects and the like travel as exceptions
            self.check(request, e)
            raise
        self.check(request, response)
        return response

    def check(self, request: web.Request, response: web.StreamResponse) -> None:
        route = request.match_info.route
        resource = route.resource
        if resource is None or request.match_info.http_exception is not None:
            return  # no route matched: the router's own 404/405 (problem+json)
        pattern = resource.canonical
        method = request.method.lower()
        operation = self.spec["paths"].get(pattern, {}).get(method)
        if operation is None:
            if method == "head" and "get" in self.spec["paths"].get(pattern, {}):
                return  # aiohttp answers HEAD for every GET route
            self.violations.append(f"{request.method} {pattern}: not described")
            return
        self.checked += 1
        where = f"{request.method} {pattern} -> {response.status}"
        declared = operation["responses"].get(str(response.status))
        if declared is None:
            if response.status < 400:
                self.violations.append(f"{where}: status not described")
            return
        if "$ref" in declared:
            return  # the shared problem+json response, checked below by media type only
        media = (response.content_type or "").split(";")[0]
        body = response.body if isinstance(response, web.Response) else None
        content = declared.get("content", {})
        if content and media and not _media_declared(media, content):
            self.violations.append(f"{where}: media type {media} not described")
            return
        if not content and body:
            self.violations.append(f"{where}: a body where none is described")
            return
        if media == "application/json" and isinstance(body, bytes):
            self._validate_json(request, pattern, response, body, where)

    def _validate_json(
        self,
        request: web.Request,
        pattern: str,
        response: web.StreamResponse,
        body: bytes,
        where: str,
    ) -> None:
        req = _Request(
            host_url=f"{request.scheme}://{request.host}",
            path=request.path,
            path_pattern=pattern,
            method=request.method.lower(),
            parameters=RequestParameters(path=dict(request.match_info)),
        )
        resp = MockResponse(body, response.status, dict(response.headers), "application/json")
        try:
            self._openapi.validate_response(req, resp)  # type: ignore[arg-type]
        except Exception as e:  # openapi-core raises one of several errors; each is drift
            cause = e.__cause__ or e
            detail = "; ".join(str(err.message) for err in getattr(cause, "schema_errors", []))
            self.violations.append(f"{where}: {type(e).__name__}: {detail or cause}")


def _media_declared(media: str, content: dict[str, Any]) -> bool:
    kind = media.split("/")[0]
    return media in content or f"{kind}/*" in content or "*/*" in content
