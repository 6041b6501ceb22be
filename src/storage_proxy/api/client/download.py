"""``GET|HEAD /download?token=…``: a file (zero-copy, ranges, validators) or a directory as zip."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime

from aiohttp import web

from ...errors import IsADirectory
from ...paths import RelPath
from ...services.archive import stream_zip
from ...types import DirEntryType, VFolderID
from ...volumes.abc import AbstractVolume, LocalFile, ReadOptions
from ..keys import ROOT_CTX
from ..ranges import content_disposition, parse_range

_TRUE = {"1", "true", "yes", "on"}
#: Files up to this size are read and answered in one step instead of through sendfile.
SMALL_FILE = 64 * 1024


async def download(request: web.Request) -> web.StreamResponse:
    ctx = request.app[ROOT_CTX]
    claims = ctx.tokens.verify_session(request.query.get("token"), "download")
    volume = ctx.volumes.get(claims.volume)
    vfid = VFolderID.parse(claims.vfid)
    relpath = RelPath.parse(claims.relpath)
    archive = claims.archive or request.query.get("archive", "").lower() in _TRUE
    return await serve_path(request, volume, vfid, relpath, archive=archive)


async def serve_path(
    request: web.Request,
    volume: AbstractVolume,
    vfid: VFolderID,
    relpath: RelPath,
    *,
    archive: bool = False,
) -> web.StreamResponse:
    """Shared by every download route: the token or ACL check happened before."""
    name = relpath.name or vfid.folder_id.hex
    small = SMALL_FILE if "Range" not in request.headers else 0
    local = await volume.local_file(vfid, relpath, read_up_to=small)
    if local is None:
        return await _send_stream(request, volume, vfid, relpath, name)
    if local.is_dir:
        if not archive:
            raise IsADirectory(f"{relpath} is a directory; ask for archive=true to get a zip")
        return await _send_zip(request, local.path, f"{name}.zip")
    if local.body is not None:
        return _send_small(request, local, name)
    response = web.FileResponse(local.path, chunk_size=256 * 1024)
    response.headers["Content-Disposition"] = content_disposition(name)
    return response


def _send_small(request: web.Request, local: LocalFile, name: str) -> web.Response:
    """A small file already read: one response, the validators FileResponse would send."""
    st = local.stat
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # aiohttp FileResponse's form
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(name),
    }
    inm = request.headers.get("If-None-Match")
    ims = request.if_modified_since
    if (inm is not None and etag in (t.strip() for t in inm.split(","))) or (
        inm is None and ims is not None and int(st.st_mtime) <= ims.timestamp()
    ):
        response = web.Response(status=304, headers=headers)
    else:
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = web.Response(body=local.body, headers=headers, content_type=ctype)
    response.last_modified = modified
    return response


async def _send_zip(request: web.Request, root: object, filename: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": content_disposition(filename),
        }
    )
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in stream_zip(root):  # type: ignore[arg-type]
            await response.write(chunk)
    await response.write_eof()
    return response


async def _send_stream(
    request: web.Request, volume: AbstractVolume, vfid: VFolderID, relpath: RelPath, name: str
) -> web.StreamResponse:
    """Backends without local files (object stores): ranges handled here, bytes streamed."""
    entry = await volume.stat(vfid, relpath)
    if entry.type is DirEntryType.DIRECTORY:
        raise IsADirectory(f"{relpath} is a directory")
    size = entry.stat.size
    byte_range = parse_range(request.headers.get("Range"), size)
    response = web.StreamResponse(status=206 if byte_range else 200)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["Content-Type"] = "application/octet-stream"
    response.last_modified = entry.stat.modified
    start, end = byte_range or (0, size - 1)
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response.content_length = max(0, end - start + 1)
    await response.prepare(request)
    if request.method != "HEAD" and size:
        options = ReadOptions(offset=start, length=end - start + 1)
        async for chunk in volume.read(vfid, relpath, options):
            await response.write(chunk)
    await response.write_eof()
    return response
