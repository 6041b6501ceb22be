"""The file API for people and programs: ``/api/v1/…`` with a user token.

Every operation checks the caller's right on the vfolder: RO reads, RW also writes (create,
overwrite, rename, mkdir), RWD also deletes.  A vfolder the caller cannot see at all is a 404.
Routes name a vfolder as ``/api/v1/vfolders/{volume}/{quota-scope}/{folder-hex}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ...core.errors import IncompleteBody, InvalidParameter, MetadataTooLarge
from ...core.files import MAX_FILE_META_BYTES, WriteOptions
from ...core.paths import RelPath
from ...core.types import VFolderID
from ...services.access import Actor
from ..keys import services
from ..params import json_object, parse_json
from ..streams import body_chunks, bounded, idle_timeout
from .auth import require_user
from .download import send, small_read

PREFIX = "/api/v1/vfolders/{volume}/{scope}/{folder}"
DEFAULT_LIMIT = 1000
_BODY_CHUNK = 1 << 20


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/vfolders", list_vfolders)
    router.add_get(PREFIX + "/files", list_files)
    router.add_get(PREFIX + "/files/{path:.+}", download)
    router.add_put(PREFIX + "/files/{path:.+}", upload_raw)
    router.add_post(PREFIX + "/files", upload_form)
    router.add_post(PREFIX + "/files/{path:.*}", upload_form)
    router.add_delete(PREFIX + "/files/{path:.+}", delete)
    router.add_get(PREFIX + "/metadata/{path:.+}", get_metadata)
    router.add_patch(PREFIX + "/metadata/{path:.+}", update_metadata)
    router.add_post(PREFIX + "/mkdir", mkdir)
    router.add_post(PREFIX + "/move", move)


def url_target(request: web.Request) -> tuple[str, VFolderID, RelPath]:
    """The volume, vfolder and path the URL names."""
    m = request.match_info
    vfid = VFolderID.parse(f"{m['scope']}/{m['folder']}")
    return m["volume"], vfid, RelPath.parse(m.get("path", ""))


async def list_vfolders(request: web.Request) -> web.Response:
    actor = require_user(request)
    items = [
        {
            "volume": record.volume,
            "vfid": record.vfid,
            "owner": record.owner,
            "kind": record.kind,
            "permission": grant.label,
        }
        for record, grant in await services(request).access.visible_to(actor)
    ]
    return web.json_response({"vfolders": items})


async def list_files(request: web.Request) -> web.Response:
    """Every file below the vfolder in key order: ``prefix``, ``marker``, ``limit`` as in S3."""
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise InvalidParameter("limit must be an integer") from None
    page = await services(request).files.list_files(
        actor,
        volume,
        vfid,
        prefix=request.query.get("prefix", ""),
        marker=request.query.get("marker", ""),
        limit=limit,
    )
    return web.json_response(
        {
            "files": [
                {
                    "path": e.path,
                    "size": e.stat.size,
                    "modified": e.stat.modified.isoformat(),
                    "type": e.type.value,
                }
                for e in page.files
            ],
            "truncated": page.truncated,
            "next_marker": page.next_marker,
        }
    )


async def download(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    archive = request.query.get("archive", "").lower() in {"1", "true", "yes"}
    opened = await services(request).files.open_download(
        actor, volume, vfid, relpath, archive=archive, read_up_to=small_read(request)
    )
    return await send(request, opened)


async def _store(
    request: web.Request,
    actor: Actor,
    relpath: RelPath,
    body: AsyncIterator[bytes],
    content_type: str | None,
    size_hint: int | None,
) -> web.Response:
    volume, vfid, _ = url_target(request)
    tags = _tags_from(request.headers.get("X-Tags"))
    _check_meta_size(content_type, tags)
    options = WriteOptions(
        size_hint=size_hint,
        checksums=True,
        content_type=content_type,
        tags=tags,
        overwrite=request.query.get("overwrite", "true").lower() != "false",
    )
    meta = await services(request).files.write(actor, volume, vfid, relpath, body, options)
    return web.json_response(meta.to_json(str(relpath)), status=201)


def _check_meta_size(content_type: str | None, tags: dict[str, str] | None) -> None:
    """Tags and content type beyond ``MAX_FILE_META_BYTES`` (as JSON) are refused up front."""
    if content_type is None and not tags:
        return
    meta = {"content_type": content_type, "tags": tags or {}}
    size = len(json.dumps(meta, separators=(",", ":")))
    if size > MAX_FILE_META_BYTES:
        raise MetadataTooLarge(
            f"tags and content type take {size} bytes as JSON, at most {MAX_FILE_META_BYTES}"
        )


def _tags_from(header: str | None) -> dict[str, str] | None:
    if not header:
        return None
    tags = parse_json(header, "X-Tags")
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidParameter("X-Tags must be a JSON object of strings")
    return tags


async def upload_raw(request: web.Request) -> web.Response:
    actor = require_user(request)
    _, _, relpath = url_target(request)
    content_type = request.headers.get("Content-Type")
    body = body_chunks(request)
    return await _store(request, actor, relpath, body, content_type, request.content_length)


async def upload_form(request: web.Request) -> web.Response:
    """multipart/form-data with a ``file`` part; the URL names a folder or the file itself."""
    actor = require_user(request)  # 401 before the body is looked at
    _, _, relpath = url_target(request)
    if not request.content_type.startswith("multipart/"):
        raise InvalidParameter("send multipart/form-data with a 'file' part, or PUT the bytes")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        raise InvalidParameter("the multipart body has no (valid) boundary") from None
    async for part in _parts(reader):
        if isinstance(part, BodyPartReader) and part.name == "file":
            name = part.filename
            target = relpath
            if not relpath.parts or request.match_info.get("path", "").endswith("/"):
                if not name:
                    raise InvalidParameter("the 'file' part has no filename")
                target = RelPath.parse(f"{relpath}/{name}" if relpath.parts else name)
            return await _store(
                request,
                actor,
                target,
                part_chunks(request, part, idle_timeout(request)),
                part.headers.get("Content-Type"),
                None,
            )
        await skip_part(request, part)
    raise InvalidParameter("the form has no 'file' part")


async def _parts(reader: MultipartReader) -> AsyncIterator[Any]:
    """The parts of a form; a malformed form is a 400, not a crash of the parser."""
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError, KeyError, RuntimeError, HttpProcessingError) as e:
            raise InvalidParameter(f"the multipart body is malformed: {e}") from None
        if part is None:
            return
        yield part


async def part_chunks(
    request: web.Request, part: BodyPartReader, idle: float
) -> AsyncIterator[bytes]:
    """A part's bytes up to its closing boundary.  A body that ends before that boundary (cut
    short) ends it with :class:`IncompleteBody`, so the part is never stored as a whole file:
    aiohttp's reader answers the end of the body as it answers the end of a part (an empty
    chunk), or fails reading on after it; only ``at_eof`` tells the boundary was seen."""
    while True:
        try:
            chunk = await bounded(request.transport, part.read_chunk(_BODY_CHUNK), idle, "sent")
        except (ValueError, AssertionError, HttpProcessingError) as e:
            raise _unreadable(request, e) from None
        if not chunk:
            break
        yield chunk
    if not part.at_eof():
        raise IncompleteBody("the body ended inside a multipart part (no closing boundary)")


async def skip_part(request: web.Request, part: BodyPartReader | MultipartReader) -> None:
    """Read past a part that is not wanted (a 400, never a crash, where the body is bad)."""
    try:
        await part.release()
    except (ValueError, AssertionError, HttpProcessingError) as e:
        raise _unreadable(request, e) from None


def _unreadable(request: web.Request, e: Exception) -> InvalidParameter:
    if request.content.at_eof():
        return IncompleteBody(f"the body ended inside a multipart part ({e})")
    return InvalidParameter(f"the multipart body is malformed: {e}")


async def delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    recursive = request.query.get("recursive", "").lower() in {"1", "true", "yes"}
    await services(request).files.delete(actor, volume, vfid, [relpath], recursive=recursive)
    return web.Response(status=204)


async def get_metadata(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    meta = await services(request).files.file_meta(actor, volume, vfid, relpath)
    return web.json_response(meta.to_json(str(relpath)), headers={"ETag": meta.etag})


async def update_metadata(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, relpath = url_target(request)
    body = await json_object(request)
    if not set(body) <= {"content_type", "tags"}:
        raise InvalidParameter("send a JSON object with 'content_type' and/or 'tags'")
    content_type = body.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise InvalidParameter("content_type must be a string")
    tags = _tags_from(json.dumps(body["tags"])) if "tags" in body else None
    _check_meta_size(content_type, tags)
    meta = await services(request).files.update_file_meta(
        actor, volume, vfid, relpath, content_type=content_type, tags=tags
    )
    return web.json_response(meta.to_json(str(relpath)))


async def mkdir(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    body = await json_object(request)
    path = RelPath.parse(body.get("path"), allow_root=False)
    (error,) = await services(request).files.mkdir(
        actor, volume, vfid, [path], parents=True, exist_ok=bool(body.get("exist_ok", False))
    )
    if error is not None:
        raise error
    return web.json_response({"path": str(path)}, status=201)


async def move(request: web.Request) -> web.Response:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    body = await json_object(request)
    src = RelPath.parse(body.get("src"), allow_root=False)
    dst = RelPath.parse(body.get("dst"), allow_root=False)
    await services(request).files.move(actor, volume, vfid, src, dst)
    return web.json_response({"src": str(src), "dst": str(dst)})
