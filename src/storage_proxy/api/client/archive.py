"""``GET /download-archive?token=…``: several files and directories of one vfolder as one zip.

The token (``POST /folder/file/archive-download-token`` on the manager API) names the vfolder and
the paths; each path is parsed and looked up before the answer starts (a missing one is a 404, a
malformed one or a link a 400), then each is opened beneath the vfolder's root when the archive
reaches it and streamed through the same encoder as a directory download (``services.archive``).

With ``progress=true`` the archive is sent by a background task (kind ``archive-download``): its
id comes in ``X-BgTask-Id`` with the headers, and the manager API's ``/bgtask/{id}/events``
tell the files and bytes sent so far; cancelling the task cuts the download.
"""

from __future__ import annotations

from aiohttp import web

from ...core.errors import FileNotFound, InvalidParameter
from ...services.archive import ZipSource
from ...services.bgtasks import BgTaskEnded
from ...services.transfers import ArchiveGrant, ArchiveProgress
from ..dialect import wire
from ..keys import services
from ..streams import cut
from .auth import as_grant
from .download import pump_zip, send_zip, zip_response


async def download_archive(request: web.Request) -> web.StreamResponse:
    """In the 26.09 dialect a missing path is a text/plain 404 (``404: File not found: <path>``),
    as storage-proxy 26.9.6 answers it."""
    token = request.query.get("token")
    if not token:
        raise InvalidParameter("a token is required", errors={"token": "is required"})
    transfers = services(request).transfers
    grant = transfers.redeem_archive(token)
    as_grant(request, grant.actor)
    try:
        selection = await transfers.open_archive(grant)
    except FileNotFound as e:
        if not wire(request).archive_404_text:
            raise
        request["error_code"] = e.code
        return web.Response(status=404, text=f"404: {e.detail}")
    if request.method == "GET" and _flag(request.query.get("progress", "")):
        return await _send_followed(request, grant, selection)
    return await send_zip(request, selection, grant.filename)


def _flag(value: str) -> bool:
    return value.lower() in {"1", "true", "yes"}


async def _send_followed(
    request: web.Request, grant: ArchiveGrant, selection: ZipSource
) -> web.StreamResponse:
    """The archive sent by a background task whose id goes out in ``X-BgTask-Id`` with the
    headers; cancelling the task cuts the connection (the zip then has no end record)."""
    response = zip_response(grant.filename)

    async def started(task_id: str) -> None:
        response.headers["X-BgTask-Id"] = task_id
        await response.prepare(request)

    async def send(progress: ArchiveProgress) -> None:
        await pump_zip(request, response, selection, progress.file_done)

    try:
        await services(request).transfers.follow_archive(grant, send, started)
        await response.write_eof()
    except BgTaskEnded:  # cancelled, or the client went away
        cut(request.transport)
    finally:
        await selection.close()
    return response
