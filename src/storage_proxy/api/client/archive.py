"""``GET /download-archive?token=…``: several files and directories of one vfolder as one zip.

The token (``POST /folder/file/archive-download-token`` on the manager API) names the vfolder and
the paths; each path is parsed and looked up before the answer starts (a missing one is a 404, a
malformed one or a link a 400), then each is opened beneath the vfolder's root when the archive
reaches it and streamed through the same encoder as a directory download (``services.archive``).
"""

from __future__ import annotations

from aiohttp import web

from ...core.errors import FileNotFound, InvalidParameter
from ..dialect import wire
from ..keys import services
from .auth import as_grant
from .download import send_zip


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
    return await send_zip(request, selection, grant.filename)
