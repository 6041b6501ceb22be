"""``GET /download-archive?token=…``: several files and directories of one vfolder as one zip.

The token (``POST /folder/file/archive-download-token`` on the manager API) names the vfolder and
the paths; each path is parsed and looked up before the answer starts (a missing one is a 404, a
malformed one or a link a 400), then each is opened beneath the vfolder's root when the archive
reaches it and streamed through the same encoder as a directory download (``services.archive``).
"""

from __future__ import annotations

from aiohttp import web

from ..keys import services
from .auth import as_grant
from .download import send_zip


async def download_archive(request: web.Request) -> web.StreamResponse:
    transfers = services(request).transfers
    grant = transfers.redeem_archive(request.query.get("token"))
    as_grant(request, grant.actor)
    selection = await transfers.open_archive(grant)
    return await send_zip(request, selection, grant.filename)
