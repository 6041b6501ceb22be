"""``POST /api/v1/vfolders/…/batch``: many files in one request, with a result for each.

The body is a tar stream (``application/x-tar``) or a multipart form whose parts each carry a
file named by its ``filename`` (a relative path: ``a/b/c.png``). Each file is stored as a PUT
of it alone would be (:mod:`...services.batch`); ``path`` names the folder they land below.

With ``progress=true`` (for a big batch) the upload runs as a background task: the answer's
headers go out at once with ``X-BgTask-Id``, so its progress (files done of ``files`` when
given, bytes stored) can be followed on the manager API's ``/bgtask/{id}/events`` while the body
is still being sent; the JSON result follows when the batch is done, with ``bgtask_id`` in it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ...core.errors import InvalidParameter, UnsupportedMediaType
from ...core.paths import RelPath
from ...services.batch import BatchItem, BrokenStream, Track, tar_items
from ...services.tarstream import ReadExactly
from ..keys import services
from ..streams import bounded, idle_timeout
from .auth import require_user
from .files_v1 import PREFIX, _part_chunks, _parts, url_target

TAR_TYPES = frozenset({"application/x-tar", "application/tar"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(PREFIX + "/batch", upload_batch)


async def upload_batch(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    volume, vfid, _ = url_target(request)
    base = RelPath.parse(request.query.get("path", ""))
    overwrite = request.query.get("overwrite", "true").lower() != "false"
    ctype = request.content_type
    if ctype in TAR_TYPES:
        items = tar_items(_read_exactly(request))
    elif ctype.startswith("multipart/"):
        items = _form_items(request)
    else:
        raise UnsupportedMediaType("send application/x-tar or multipart/form-data")
    if _flag(request.query.get("progress", "")):
        response, track = _tracking(request)
    else:
        response, track = None, None
    result = await services(request).batch.upload(
        actor, volume, vfid, base, items, overwrite=overwrite, track=track
    )
    if response is None:
        return web.json_response(result.to_json())
    body = {**result.to_json(), "bgtask_id": response.headers["X-BgTask-Id"]}
    await response.write(json.dumps(body).encode())
    await response.write_eof()
    return response


def _flag(value: str) -> bool:
    return value.lower() in {"1", "true", "yes"}


def _tracking(request: web.Request) -> tuple[web.StreamResponse, Track]:
    """The answer whose headers (with the task's id) go out before the body is read."""
    files = request.query.get("files")
    if files is not None and not files.isdigit():
        raise InvalidParameter("files must be a count", errors={"files": "not a count"})
    response = web.StreamResponse(headers={"Content-Type": "application/json"})

    async def started(task_id: str) -> None:
        response.headers["X-BgTask-Id"] = task_id
        await response.prepare(request)

    return response, Track(started, None if files is None else int(files))


def _read_exactly(request: web.Request) -> ReadExactly:
    content, idle = request.content, idle_timeout(request)

    async def read(n: int) -> bytes:
        try:
            return await bounded(request.transport, content.readexactly(n), idle, "sent")
        except asyncio.IncompleteReadError as e:
            return e.partial

    return read


async def _form_items(request: web.Request) -> AsyncIterator[BatchItem]:
    """Each part with a filename is a file; other parts are skipped."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        raise BrokenStream("the multipart body has no (valid) boundary") from None
    idle = idle_timeout(request)
    try:
        async for part in _parts(reader):
            if not isinstance(part, BodyPartReader):
                await part.release()  # a nested multipart: not a file
                continue
            if not part.filename:
                await part.release()
                continue
            yield BatchItem(
                part.filename,
                _form_chunks(request, part, idle),
                content_type=part.headers.get("Content-Type"),
            )
    except InvalidParameter as e:
        if isinstance(e, BrokenStream):
            raise
        raise BrokenStream(str(e)) from None


async def _form_chunks(
    request: web.Request, part: BodyPartReader, idle: float
) -> AsyncIterator[bytes]:
    try:
        async for chunk in _part_chunks(request, part, idle):
            yield chunk
    except (ValueError, AssertionError, HttpProcessingError) as e:
        raise BrokenStream(f"the multipart body is malformed: {e}") from None
