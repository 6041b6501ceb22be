"""Writes through either API drop the vfolder's cached usage on every node once they are done.

A handler (or a guard in front of it) marks the vfolder it writes into; the middleware drops the
cached figure after the handler has finished, so a reader cannot cache the figure from before the
write.  Failed writes count too: a partial delete has still changed the tree.
"""

from __future__ import annotations

from aiohttp import web

from ..core.types import VFolderID
from .keys import ROOT_CTX
from .problem import Handler

_WROTE_VFOLDER = "storage_proxy.wrote_vfolder"


def mark_written(request: web.Request, volume: str, vfid: VFolderID) -> None:
    request[_WROTE_VFOLDER] = (volume, vfid)


@web.middleware
async def usage_invalidation_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    try:
        return await handler(request)
    finally:
        target = request.get(_WROTE_VFOLDER)
        if target is not None:
            await request.app[ROOT_CTX].usage.changed(*target)
