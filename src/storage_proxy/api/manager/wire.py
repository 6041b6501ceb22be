"""The manager API's answers that are not problems, in either dialect.

storage-proxy 26.9.6 (like 23.9.10) answers a file operation that the filesystem refused with
400 ``{"msg", "errno", "paths"}`` (the ``strerror`` and ``errno`` of the failure) and a missing
vfolder on ``/folder/mount`` with 400 ``{"msg", "vfid"}``; a manager of either release handles
them by status.  These helpers give those shapes; our ``code`` rides along in each body.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from ...core.errors import StorageProxyError
from ..problem import PlainAnswer

#: Our file errors and the errno 26.9.6 reports for them.
ERRNO = {
    "file-not-found": errno.ENOENT,
    "file-exists": errno.EEXIST,
    "not-a-directory": errno.ENOTDIR,
    "is-a-directory": errno.EISDIR,
    "directory-not-empty": errno.ENOTEMPTY,
}


def plain(body: dict[str, Any], status: int = 400) -> PlainAnswer:
    return PlainAnswer(web.json_response(body, status=status))


@contextmanager
def fs_errors(*paths: object, by_subject: bool = False) -> Iterator[None]:
    """Within the block, a refused file operation answers as both Backend.AI releases do: naming
    ``paths``, or (``by_subject``) the one path the storage refused, as they name a move's."""
    try:
        yield
    except StorageProxyError as e:
        number = ERRNO.get(e.code)
        if number is None:
            raise
        named = (e.subject,) if by_subject and e.subject else paths
        body = {"msg": os.strerror(number), "errno": number, "paths": [str(p) for p in named]}
        raise plain({**body, "code": e.code, "detail": e.detail}) from e
