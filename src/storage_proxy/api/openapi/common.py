"""Small builders for the OpenAPI 3.1 documents, and what every document shares.

The descriptions are plain data written next to the code they describe; the test suite checks
every route against them and validates the responses it receives, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import __version__
from ...core.types import DirEntryType

Schema = dict[str, Any]
OPENAPI_VERSION = "3.1.0"

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
BYTES: Schema = {"type": "integer", "minimum": 0, "description": "bytes"}
TIME: Schema = {"type": "string", "format": "date-time"}
ANY: Schema = {}
BINARY: Schema = {"type": "string", "contentMediaType": "application/octet-stream"}
ENTRY_TYPE: Schema = {
    "enum": [t.value for t in DirEntryType],
    "description": "SPECIAL: a FIFO, socket or device — listed, never read: a download of one is "
    "a 400 not-a-regular-file, and an archive leaves it out",
}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object; ``required`` defaults to every property named."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        **extra,
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def json_content(schema: Schema, media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def ok(description: str, schema: Schema | None = None, **headers: Schema) -> dict[str, Any]:
    """A response: JSON when ``schema`` is given, else no body; ``headers`` by name."""
    resp: dict[str, Any] = {"description": description}
    if schema is not None:
        resp["content"] = json_content(schema)
    if headers:
        resp["headers"] = {
            name.replace("_", "-"): {"schema": s, "description": s.get("description", name)}
            for name, s in headers.items()
        }
    return resp


def media(description: str, *types: str, **headers: Schema) -> dict[str, Any]:
    resp = ok(description, **headers)
    resp["content"] = {t: {"schema": BINARY} for t in types}
    return resp


def param(name: str, where: str, schema: Schema, description: str, required: bool = False) -> Any:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


def query(name: str, description: str, schema: Schema = STR, required: bool = False) -> Any:
    return param(name, "query", schema, description, required)


def path(name: str, description: str) -> Any:
    return param(name, "path", STR, description, True)


def header(name: str, description: str, schema: Schema = STR, required: bool = False) -> Any:
    return param(name, "header", schema, description, required)


def op(
    summary: str,
    tag: str,
    responses: Mapping[int, Any],
    *,
    description: str | None = None,
    params: list[Any] | None = None,
    body: Schema | None = None,
    body_media: dict[str, Any] | None = None,
    body_required: bool = True,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = params
    if body is not None or body_media is not None:
        content = body_media if body_media is not None else json_content(body or ANY)
        operation["requestBody"] = {"required": body_required, "content": content}
    operation["responses"] = {str(code): resp for code, resp in responses.items()} | {
        "default": {"$ref": "#/components/responses/Problem"}
    }
    if security is not None:
        operation["security"] = security
    return operation


PROBLEM: Schema = obj(
    {
        "type": {"type": "string", "description": "urn:storage-proxy:problem:<code>"},
        "title": STR,
        "status": INT,
        "code": {"type": "string", "description": "stable, machine-readable"},
        "detail": STR,
        "request_id": STR,
    },
    required=["type", "title", "status", "code", "detail"],
)

STATUS = obj(
    {"status": {"const": "ok"}, "type": STR, "storage-proxy": STR, "pid": INT},
    required=["status", "type", "storage-proxy"],
)


def document(
    title: str,
    description: str,
    paths: dict[str, dict[str, Any]],
    schemas: dict[str, Schema] | None = None,
    security_schemes: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": __version__, "description": description},
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM, **(schemas or {})},
            "responses": {
                "Problem": {
                    "description": "An error: problem+json (RFC 9457) with a stable `code`",
                    "content": {"application/problem+json": {"schema": ref("Problem")}},
                }
            },
        },
    }
    if security_schemes:
        doc["components"]["securitySchemes"] = security_schemes
    if security is not None:
        doc["security"] = security
    return doc


def self_description(tag: str) -> dict[str, dict[str, Any]]:
    """``/openapi.json`` and ``/docs``, the same on every listener (no credentials needed)."""
    return {
        "/openapi.json": {
            "get": op(
                "This description (OpenAPI 3.1)",
                tag,
                {200: ok("The OpenAPI document", {"type": "object"})},
                security=[],
            )
        },
        "/docs": {
            "get": op(
                "The API reference, rendered from /openapi.json (self-contained HTML)",
                tag,
                {200: media("The reference page", "text/html")},
                security=[],
            )
        },
        "/docs/{name}": {
            "get": op(
                "A file of the reference page (script, style)",
                tag,
                {200: media("The file", "text/javascript", "text/css"), 304: ok("Not modified")},
                params=[path("name", "the file name")],
                security=[],
            )
        },
    }
