"""The Delta Sharing REST endpoints under ``/delta-sharing/``: parse, one service call, shape.

Errors are the protocol's JSON ``{"errorCode", "message"}`` with a stable code and the right
status; a table the recipient may not read does not exist for it (404)."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import S3Error
from . import changes, files, query
from .recipients import Recipient, SharingError
from .service import SharingService, TableRef, bad, not_found

log = logging.getLogger("storage_proxy.deltaview.sharing")
PREFIX = "/delta-sharing"
VERSION_HEADER = "delta-table-version"
Ctx = tuple[web.Request, SharingService, Recipient, dict[str, str]]
Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "message": message}, status=status)


def _page(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    q = request.query
    try:
        size = int(q.get("maxResults", "500"))
        start = int(base64.urlsafe_b64decode(q["pageToken"]).decode()) if "pageToken" in q else 0
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad("maxResults and pageToken must be what this server sent") from None
    if not 1 <= size <= 1000 or start < 0:
        raise bad("maxResults must be between 1 and 1000")
    out: dict[str, Any] = {"items": items[start : start + size]}
    if start + size < len(items):
        out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return out


async def list_shares(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, _ = ctx
    names = sorted({t.share for t in await svc.tables(who)})
    return web.json_response(_page(request, [{"name": n, "id": n} for n in names]))


async def get_share(ctx: Ctx) -> web.StreamResponse:
    _, svc, who, m = ctx
    if not await svc.tables(who, m["share"]):
        raise not_found(f"Share {m['share']}")
    return web.json_response({"share": {"name": m["share"], "id": m["share"]}})


async def list_schemas(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, m = ctx
    tables = await svc.tables(who, m["share"])
    if not tables:
        raise not_found(f"Share {m['share']}")
    names = sorted({t.schema for t in tables})
    return web.json_response(_page(request, [{"name": n, "share": m["share"]} for n in names]))


async def list_tables(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, m = ctx
    tables = [t for t in await svc.tables(who, m["share"]) if t.schema == m["schema"]]
    if not tables:
        raise not_found(f"Schema {m['share']}.{m['schema']}")
    return web.json_response(_page(request, [t.json() for t in tables]))


async def list_all_tables(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, m = ctx
    tables = await svc.tables(who, m["share"])
    if not tables:
        raise not_found(f"Share {m['share']}")
    return web.json_response(_page(request, [t.json() for t in tables]))


async def _table(ctx: Ctx) -> TableRef:
    _, svc, who, m = ctx
    return await svc.table(who, m["share"], m["schema"], m["table"])


async def table_version(ctx: Ctx) -> web.StreamResponse:
    request, svc, _, _ = ctx
    ref = await _table(ctx)
    ts = request.query.get("startingTimestamp")
    version = await svc.version_at(ref.name, ts) if ts else (await svc.snapshot(ref.name)).version
    return web.Response(status=200, headers={VERSION_HEADER: str(version)})


async def table_metadata(ctx: Ctx) -> web.StreamResponse:
    request, svc, _, _ = ctx
    ref = await _table(ctx)
    snap = await svc.snapshot(ref.name)
    return query.metadata_response(request, snap)


async def table_query(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, _ = ctx
    ref = await _table(ctx)
    try:
        body = await request.json() if request.body_exists else {}
    except (ValueError, UnicodeDecodeError):
        raise bad("the query body must be a JSON object") from None
    if not isinstance(body, dict):
        raise bad("the query body must be a JSON object")
    return await query.files_response(request, svc, who, ref, query.QueryArgs.parse(body))


async def table_changes(ctx: Ctx) -> web.StreamResponse:
    request, svc, who, _ = ctx
    ref = await _table(ctx)
    return await changes.changes_response(request, svc, who, ref)


_TABLE = r"/shares/(?P<share>[^/]+)/schemas/(?P<schema>[^/]+)/tables/(?P<table>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/shares"), list_shares),
    ("GET", re.compile(r"/shares/(?P<share>[^/]+)"), get_share),
    ("GET", re.compile(r"/shares/(?P<share>[^/]+)/schemas"), list_schemas),
    ("GET", re.compile(r"/shares/(?P<share>[^/]+)/schemas/(?P<schema>[^/]+)/tables"), list_tables),
    ("GET", re.compile(r"/shares/(?P<share>[^/]+)/all-tables"), list_all_tables),
    ("GET", re.compile(_TABLE + "/version"), table_version),
    ("HEAD", re.compile(_TABLE + "/version"), table_version),
    ("GET", re.compile(_TABLE + "/metadata"), table_metadata),
    ("POST", re.compile(_TABLE + "/query"), table_query),
    ("GET", re.compile(_TABLE + "/changes"), table_changes),
]


def _route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    for verb, pattern, handler in ROUTES:
        if (m := pattern.fullmatch(path)) is not None:
            if verb == method:
                return handler, m.groupdict()
    raise SharingError(404, "RESOURCE_DOES_NOT_EXIST", "No such Delta Sharing endpoint.")


async def dispatch(
    request: web.Request, svc: SharingService, authenticate: Callable[[str | None], Any]
) -> web.StreamResponse:
    path = request.path[len(PREFIX) :] or "/"
    try:
        if path.startswith("/files/"):
            return await files.serve(request, svc, path[len("/files/") :])
        handler, match = _route(request.method, path.rstrip("/") or "/")
        who = await authenticate(request.headers.get("Authorization"))
        return await handler((request, svc, who, match))
    except SharingError as e:
        return error(e.status, e.code, e.message)
    except S3Error as e:
        status = 404 if e.error.status == 404 else 403 if e.error.status == 403 else 502
        code = {403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}.get(status, "INTERNAL")
        return error(status, code, e.message)
    except ConnectionError:
        raise
    except Exception:
        where = "/files/…" if path.startswith("/files/") else path  # a file URL is a secret
        log.exception("delta sharing: unhandled error in %s %s", request.method, where)
        return error(500, "INTERNAL_ERROR", "The server could not answer.")
