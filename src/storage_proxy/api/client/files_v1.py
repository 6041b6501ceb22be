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

from ...core.errors import InvalidParameter
from ...core.paths import RelPath
from ...core.records import Permission
from ...core.types import DirEntryType, VFolderID
from ...volumes.abc import AbstractVolume, WriteOptions
from ..keys import ROOT_CTX
from ..params import json_object, parse_json
from ..streams import body_chunks, bounded, idle_timeout
from ..written import mark_written
from .auth import require_user
from .download import serve_path

PREFIX = "/api/v1/vfolders/{volume}/{scope}/{folder}"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
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


async def _open(
    request: web.Request, needed: Permission
) -> tuple[AbstractVolume, VFolderID, RelPath]:
    """Authenticate, check the right on the vfolder, and parse the path in the URL."""
    ctx = request.app[ROOT_CTX]
    user = require_user(request)
    m = request.match_info
    vfid = VFolderID.parse(f"{m['scope']}/{m['folder']}")
    await ctx.permissions.require(user, m["volume"], vfid, needed)
    if needed >= Permission.RW:
        await ctx.bgtasks.ensure_writable(m["volume"], str(vfid))
        mark_written(request, m["volume"], vfid)
    volume = ctx.volumes.get(m["volume"])
    return volume, vfid, RelPath.parse(m.get("path", ""))


async def list_vfolders(request: web.Request) -> web.Response:
    ctx = request.app[ROOT_CTX]
    user = require_user(request)
    items = [
        {
            "volume": record.volume,
            "vfid": record.vfid,
            "owner": record.owner,
            "kind": record.kind,
            "permission": grant.label,
        }
        for record, grant in await ctx.permissions.visible_vfolders(user)
    ]
    return web.json_response({"vfolders": items})


async def list_files(request: web.Request) -> web.Response:
    """Every file below the vfolder in key order: ``prefix``, ``marker``, ``limit`` as in S3."""
    volume, vfid, _ = await _open(request, Permission.RO)
    prefix = request.query.get("prefix", "")
    marker = request.query.get("marker", "")
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise InvalidParameter("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}")
    # Walk only the directory the prefix points into.
    base = RelPath.parse(prefix.rsplit("/", 1)[0] if "/" in prefix else "")
    entries = [
        e
        async for e in volume.scandir(vfid, base, recursive=True, limit=None)  # all, then page
        if e.type is not DirEntryType.DIRECTORY and e.path.startswith(prefix) and e.path > marker
    ]
    entries.sort(key=lambda e: e.path)
    page = entries[:limit]
    truncated = len(entries) > limit
    return web.json_response(
        {
            "files": [
                {
                    "path": e.path,
                    "size": e.stat.size,
                    "modified": e.stat.modified.isoformat(),
                    "type": e.type.value,
                }
                for e in page
            ],
            "truncated": truncated,
            "next_marker": page[-1].path if truncated else None,
        }
    )


async def download(request: web.Request) -> web.StreamResponse:
    volume, vfid, relpath = await _open(request, Permission.RO)
    archive = request.query.get("archive", "").lower() in {"1", "true", "yes"}
    return await serve_path(request, volume, vfid, relpath, archive=archive)


async def _store(
    request: web.Request,
    volume: AbstractVolume,
    vfid: VFolderID,
    relpath: RelPath,
    body: AsyncIterator[bytes],
    content_type: str | None,
    size_hint: int | None,
) -> web.Response:
    tags = _tags_from(request.headers.get("X-Tags"))
    meta = await volume.write(
        vfid,
        relpath,
        body,
        WriteOptions(
            size_hint=size_hint,
            checksums=True,
            content_type=content_type,
            tags=tags,
            overwrite=request.query.get("overwrite", "true").lower() != "false",
        ),
    )
    return web.json_response(meta.to_json(str(relpath)), status=201)


def _tags_from(header: str | None) -> dict[str, str] | None:
    if not header:
        return None
    tags = parse_json(header, "X-Tags")
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidParameter("X-Tags must be a JSON object of strings")
    return tags


async def upload_raw(request: web.Request) -> web.Response:
    volume, vfid, relpath = await _open(request, Permission.RW)
    content_type = request.headers.get("Content-Type")
    body = body_chunks(request)
    return await _store(request, volume, vfid, relpath, body, content_type, request.content_length)


async def upload_form(request: web.Request) -> web.Response:
    """multipart/form-data with a ``file`` part; the URL names a folder or the file itself."""
    volume, vfid, relpath = await _open(request, Permission.RW)
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
                volume,
                vfid,
                target,
                _part_chunks(request, part, idle_timeout(request)),
                part.headers.get("Content-Type"),
                None,
            )
        if isinstance(part, BodyPartReader):
            await part.release()
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


async def _part_chunks(
    request: web.Request, part: BodyPartReader, idle: float
) -> AsyncIterator[bytes]:
    while chunk := await bounded(request.transport, part.read_chunk(_BODY_CHUNK), idle, "sent"):
        yield chunk


async def delete(request: web.Request) -> web.Response:
    volume, vfid, relpath = await _open(request, Permission.RWD)
    recursive = request.query.get("recursive", "").lower() in {"1", "true", "yes"}
    await volume.delete_files(vfid, [relpath], recursive=recursive)
    return web.Response(status=204)


async def get_metadata(request: web.Request) -> web.Response:
    volume, vfid, relpath = await _open(request, Permission.RO)
    meta = await volume.get_file_meta(vfid, relpath)
    return web.json_response(meta.to_json(str(relpath)), headers={"ETag": meta.etag})


async def update_metadata(request: web.Request) -> web.Response:
    volume, vfid, relpath = await _open(request, Permission.RW)
    body = await json_object(request)
    if not set(body) <= {"content_type", "tags"}:
        raise InvalidParameter("send a JSON object with 'content_type' and/or 'tags'")
    content_type = body.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise InvalidParameter("content_type must be a string")
    tags = _tags_from(json.dumps(body["tags"])) if "tags" in body else None
    meta = await volume.update_file_meta(vfid, relpath, content_type=content_type, tags=tags)
    return web.json_response(meta.to_json(str(relpath)))


async def mkdir(request: web.Request) -> web.Response:
    volume, vfid, _ = await _open(request, Permission.RW)
    body = await json_object(request)
    path = RelPath.parse(body.get("path"), allow_root=False)
    await volume.mkdir(vfid, path, parents=True, exist_ok=bool(body.get("exist_ok", False)))
    return web.json_response({"path": str(path)}, status=201)


async def move(request: web.Request) -> web.Response:
    volume, vfid, _ = await _open(request, Permission.RW)
    body = await json_object(request)
    src = RelPath.parse(body.get("src"), allow_root=False)
    dst = RelPath.parse(body.get("dst"), allow_root=False)
    await volume.move_file(vfid, src, dst)
    return web.json_response({"src": str(src), "dst": str(dst)})
