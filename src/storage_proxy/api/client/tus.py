"""Resumable uploads speaking tus 1.0.0, plus a plain whole-file PUT.

Extensions: creation, creation-with-upload, creation-defer-length, termination, checksum
(sha1/sha256/md5, 460 on mismatch, chunk discarded), expiration and concatenation (partial
uploads of one user into one vfolder, joined by a final upload without copying where the volume
can).  A session is addressed either by a manager-issued upload token (``/upload?token=…``,
Backend.AI style) or by id (``/upload/<id>``) with the user token that created it.
"""

from __future__ import annotations

import base64
import email.utils
import re
from collections.abc import AsyncIterator

from aiohttp import web

from ...core import caller
from ...core.errors import (
    InvalidParameter,
    PreconditionFailed,
    StorageProxyError,
    UnsupportedMediaType,
    UploadNotFound,
)
from ...core.paths import RelPath
from ...core.records import UploadSession
from ...core.types import VFolderID
from ...services.uploads import (
    CHECKSUM_ALGORITHMS,
    Checksum,
    concat_length,
    concat_parts,
    concat_role,
)
from ..keys import services
from ..problem import Handler, error_response
from ..streams import body_chunks
from .auth import bearer_token, require_user

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,"
    "concatenation"
)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_BODY_CHUNK = 1 << 20


#: The path under which every request is a tus request.
TUS_PREFIX = "/upload"


async def tus_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Around every request under ``/upload`` (the front door's wrap): every tus response
    carries Tus-Resumable; tus requests must speak our version (412)."""
    if request.method not in ("OPTIONS", "PUT", "GET"):
        version = request.headers.get("Tus-Resumable")
        if version != TUS_VERSION:
            error = PreconditionFailed(f"Tus-Resumable must be {TUS_VERSION}, got {version!r}")
            response: web.StreamResponse = web.json_response(
                error.to_problem(), status=412, content_type="application/problem+json"
            )
            response.headers["Tus-Version"] = TUS_VERSION
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response
    try:
        response = await handler(request)
    except StorageProxyError as e:
        request["error_code"] = e.code
        response = error_response(e, request=request)
        if "offset" in e.extra:
            response.headers["Upload-Offset"] = str(e.extra["offset"])
    response.headers["Tus-Resumable"] = TUS_VERSION
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    for path in ("/upload", "/upload/{upload_id}"):
        router.add_route("OPTIONS", path, options)
        router.add_route("HEAD", path, head)
        router.add_route("PATCH", path, patch)
        router.add_route("DELETE", path, terminate)
    router.add_post("/upload", create)
    router.add_put("/upload", put_whole)


async def options(request: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(services(request).uploads.max_upload_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


_UINT = re.compile(r"[0-9]{1,19}", re.ASCII)


def _parse_int(request: web.Request, header: str) -> int | None:
    """A non-negative decimal integer header (ASCII digits only, at most 19 of them)."""
    raw = request.headers.get(header)
    if raw is None:
        return None
    if not _UINT.fullmatch(raw):
        raise InvalidParameter(f"{header} must be a non-negative integer, got {raw[:40]!r}")
    return int(raw)


def _parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key base64value,key2 base64value2,flag``."""
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (ValueError, UnicodeDecodeError):  # binascii.Error and non-ASCII are ValueErrors
            raise InvalidParameter(
                f"Upload-Metadata value of {key!r} is not base64 UTF-8"
            ) from None
    return result


async def _session(request: web.Request) -> UploadSession:
    """The upload a request names: by its manager-issued token, or by id for the user who
    created it and may still write into its vfolder."""
    upload_id = request.match_info.get("upload_id")
    token = request.query.get("token")
    if token is not None:
        caller.identify("token:upload")
        return await services(request).transfers.redeem_upload(token, upload_id)
    actor = require_user(request)
    if not upload_id:
        raise UploadNotFound("name the upload: /upload/<id>, or pass its token")
    return await services(request).uploads.open(actor, upload_id)


def _body(request: web.Request) -> AsyncIterator[bytes]:
    return body_chunks(request)


def _progress_headers(session: UploadSession, offset: int) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Upload-Expires": _http_date(session.expires_at)}
    return headers


async def head(request: web.Request) -> web.Response:
    session = await _session(request)
    offset = await services(request).uploads.current_offset(session)
    headers = {**_progress_headers(session, offset), "Cache-Control": "no-store"}
    length = concat_length(session)
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    role = concat_role(session)
    if role == "partial":
        headers["Upload-Concat"] = "partial"
    elif role == "final":
        parts = " ".join(f"/upload/{p}" for p in concat_parts(session))
        headers["Upload-Concat"] = f"final;{parts}"
    return web.Response(status=200, headers=headers)


async def _append_body(request: web.Request, session: UploadSession, offset: int) -> int:
    length = _parse_int(request, "Upload-Length")
    checksum_header = request.headers.get("Upload-Checksum")
    checksum = Checksum.parse_header(checksum_header) if checksum_header else None
    result = await services(request).uploads.append(
        session, offset, _body(request), checksum, declare_length=length
    )
    return result.offset


async def patch(request: web.Request) -> web.Response:
    if request.content_type != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    offset = _parse_int(request, "Upload-Offset")
    if offset is None:
        raise InvalidParameter("PATCH needs an Upload-Offset header")
    session = await _session(request)
    new_offset = await _append_body(request, session, offset)
    return web.Response(status=204, headers=_progress_headers(session, new_offset))


class InvalidConcat(InvalidParameter):
    code, title = "invalid-upload-concat", "Malformed Upload-Concat header"


_UPLOAD_URL = re.compile(
    r"(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]+)?(?:/[^\s?#]*)?/upload/([0-9a-f]{32})"
)


def _parse_concat(header: str | None) -> str | list[str] | None:
    """``Upload-Concat``: None, ``"partial"``, or the upload ids a final upload joins (from
    ``final;<url> <url> ...``, absolute or relative URLs ending in ``/upload/<id>``)."""
    if header is None:
        return None
    if header == "partial":
        return header
    kind, sep, urls = header.partition(";")
    if kind != "final" or not sep:
        raise InvalidConcat(f"Upload-Concat must be partial or final;<urls>, got {header[:60]!r}")
    ids = []
    for url in urls.split():
        match = _UPLOAD_URL.fullmatch(url)
        if match is None:
            raise InvalidConcat(f"not the URL of an upload here: {url[:80]!r}")
        ids.append(match.group(1))
    if not ids:
        raise InvalidConcat("a final upload names its partial uploads: final;<url> <url> ...")
    return ids


def _target(request: web.Request) -> tuple[str, VFolderID, RelPath, dict[str, object]]:
    """Where a created upload goes, from ``Upload-Metadata`` (volume, vfid, path), and the rest
    of its metadata."""
    meta = _parse_metadata(request.headers.get("Upload-Metadata"))
    try:
        volume, vfid_raw = meta["volume"], meta["vfid"]
        path = meta.get("path") or meta["filename"]
    except KeyError as e:
        raise InvalidParameter(f"Upload-Metadata needs volume, vfid and path: no {e}") from None
    vfid = VFolderID.parse(vfid_raw)
    extra: dict[str, object] = {
        k: v for k, v in meta.items() if k not in ("volume", "vfid", "path")
    }
    extra["overwrite"] = meta.get("overwrite", "true").lower() != "false"
    extra["checksums"] = True  # the file API reports sha256 for what users upload
    return volume, vfid, RelPath.parse(path), extra


async def create(request: web.Request) -> web.Response:
    """tus creation (and creation-with-upload when the POST carries a body); concatenation."""
    uploads = services(request).uploads
    concat = _parse_concat(request.headers.get("Upload-Concat"))
    token = request.query.get("token")
    if concat is not None and token is not None:
        raise InvalidConcat("concatenation needs a user token, not an upload token")
    if isinstance(concat, list):
        return await _create_final(request, concat)
    length = _parse_int(request, "Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length") == "1"
    if length is None and not deferred:
        raise InvalidParameter("creation needs Upload-Length or Upload-Defer-Length: 1")
    if token is not None:  # the manager already made the session when it issued the token
        session = await _session(request)
        location = f"/upload?token={token}"
    else:
        actor = require_user(request)
        volume, vfid, relpath, extra = _target(request)
        if concat == "partial":
            extra["concat"] = "partial"
        session = await uploads.create(actor, volume, vfid, relpath, length, metadata=extra)
        location = f"/upload/{session.id}"
    headers = {"Location": location, "Upload-Expires": _http_date(session.expires_at)}
    if request.body_exists and request.content_type == OFFSET_CONTENT_TYPE:
        offset = await uploads.current_offset(session)
        headers["Upload-Offset"] = str(await _append_body(request, session, offset))
    return web.Response(status=201, headers=headers)


async def _create_final(request: web.Request, part_ids: list[str]) -> web.Response:
    """A final upload: its partials joined and published before the answer."""
    if "Upload-Length" in request.headers or "Upload-Defer-Length" in request.headers:
        raise InvalidConcat("a final upload has no Upload-Length: its partials make it up")
    if request.body_exists:
        raise InvalidConcat("a final upload carries no body")
    actor = require_user(request)
    volume, vfid, relpath, extra = _target(request)
    session = await services(request).uploads.concat(
        actor, volume, vfid, relpath, part_ids, metadata=extra
    )
    headers = {
        "Location": f"/upload/{session.id}",
        "Upload-Expires": _http_date(session.expires_at),
        "Upload-Offset": str(session.offset),
        "Upload-Length": str(session.offset),
    }
    return web.Response(status=201, headers=headers)


async def terminate(request: web.Request) -> web.Response:
    session = await _session(request)
    await services(request).uploads.terminate(session)
    return web.Response(status=204)


async def put_whole(request: web.Request) -> web.Response:
    """A plain PUT of the whole file for simple clients (``curl -T``): all or nothing."""
    if bearer_token(request) is not None and request.query.get("token") is None:
        raise InvalidParameter("PUT /upload needs an upload token (?token=…)")
    session = await _session(request)
    await services(request).uploads.put(session, _body(request), request.content_length)
    return web.Response(status=201)
