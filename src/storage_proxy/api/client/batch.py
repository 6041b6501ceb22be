"""``POST /api/v1/vfolders/…/batch``: many files in one request, with a result for each.

The body is a tar stream (``application/x-tar``) or a multipart form whose parts each carry a
file named by its ``filename`` (a relative path: ``a/b/c.png``). Each file is stored as a PUT
of it alone would be (:mod:`...services.batch`); ``path`` names the folder they land below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from ...core.errors import IncompleteBody, InvalidParameter, UnsupportedMediaType
from ...core.paths import RelPath
from ...services.batch import BatchItem, BrokenStream, tar_items
from ...services.tarstream import ReadExactly
from ..keys import services
from ..streams import bounded, idle_timeout
from .auth import require_user
from .files_v1 import PREFIX, _parts, part_chunks, skip_part, url_target

TAR_TYPES = frozenset({"application/x-tar", "application/tar"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(PREFIX + "/batch", upload_batch)


async def upload_batch(request: web.Request) -> web.Response:
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
    result = await services(request).batch.upload(
        actor, volume, vfid, base, items, overwrite=overwrite
    )
    return web.json_response(result.to_json())


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
            if not isinstance(part, BodyPartReader) or not part.filename:
                await skip_part(request, part)  # a nested multipart, a field: not a file
                continue
            yield BatchItem(
                part.filename,
                _form_chunks(request, part, idle),
                content_type=part.headers.get("Content-Type"),
            )
    except InvalidParameter as e:
        if isinstance(e, BrokenStream | IncompleteBody):
            raise
        raise BrokenStream(str(e)) from None


async def _form_chunks(
    request: web.Request, part: BodyPartReader, idle: float
) -> AsyncIterator[bytes]:
    try:
        async for chunk in part_chunks(request, part, idle):
            yield chunk
    except IncompleteBody:
        raise  # the batch ends there, the part not stored
    except InvalidParameter as e:
        raise BrokenStream(str(e)) from None
