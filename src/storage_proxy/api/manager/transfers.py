"""Session tokens for clients: ``POST /folder/file/download`` (a file, a directory as a zip, or
with ``version_id`` a kept version of a file), ``/folder/file/upload`` and
``/folder/file/archive-download-token``.

Shaped as Backend.AI's: the manager asks, the daemon answers ``{"token"}``; the client then
calls the client API with ``?token=…``.  An upload session is created (and its declared size
reserved against the quota) when its token is issued.
"""

from __future__ import annotations

import re

import trafaret as t
from aiohttp import web

from ..keys import services
from ..params import RelPathField, VFolderIDField, read_params
from .files import MANAGER

_target = {
    t.Key("volume"): t.String(),
    t.Key("vfid"): VFolderIDField(),
    t.Key("relpath"): RelPathField(),
}


async def download_session(request: web.Request) -> web.Response:
    params = await read_params(
        request,
        t.Dict(
            {
                **_target,
                t.Key("archive", default=False): t.ToBool,
                t.Key("unmanaged_path", default=None): t.Null | t.String(),
                t.Key("version_id", default=None): t.Null | t.String(),
            }
        ),
    )
    token = await services(request).transfers.download_token(
        MANAGER,
        params["volume"],
        params["vfid"],
        params["relpath"],
        archive=params["archive"],
        version=params["version_id"],
    )
    return web.json_response({"token": token})


async def upload_session(request: web.Request) -> web.Response:
    params = await read_params(request, t.Dict({**_target, t.Key("size"): t.ToInt(gte=0)}))
    token = await services(request).transfers.upload_token(
        MANAGER, params["volume"], params["vfid"], params["relpath"], params["size"]
    )
    return web.json_response({"token": token})


#: What Backend.AI refuses in an archive's file name: control characters and path separators.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def _archive_name(value: str) -> str | t.DataError:
    if not value.strip() or value in (".", "..") or _UNSAFE_NAME.search(value):
        return t.DataError("a file name without control characters, '/' or '\\'")
    return value


async def archive_token(request: web.Request) -> web.Response:
    """A token for ``GET /download-archive`` on the client API: several files and directories
    of one vfolder as one zip.  The paths are checked when the client comes (as in Backend.AI)."""
    params = await read_params(
        request,
        t.Dict(
            {
                t.Key("volume"): t.String(),
                t.Key("virtual_folder_id"): VFolderIDField(),
                t.Key("files"): t.List(t.String(allow_blank=True), min_length=1),
                t.Key("filename", default=None): t.Null
                | (t.String(max_length=255) & t.Call(_archive_name)),
            }
        ).allow_extra("*"),
        body_required=True,
    )
    token = services(request).transfers.archive_token(
        params["volume"], params["virtual_folder_id"], params["files"], params["filename"]
    )
    return web.json_response({"token": token})
