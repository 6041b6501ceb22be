"""Static files shipped in the package (``storage_proxy/ui_static``): the web UI and the API
reference page.  No build step: the files are served as they are in the source tree.

Only names found in that folder when the app is made are served (a fixed table, so no request
path ever reaches the filesystem), each with headers that keep the page to itself: a content
security policy allowing nothing but this origin (no inline script, no CDN, no framing), no
referrer (a page URL never travels to another site), ``nosniff``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

PACKAGE_DIR = "ui_static"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static() -> dict[str, StaticFile]:
    """Every file of the package's static folder, by name (read once, at app creation)."""
    files: dict[str, StaticFile] = {}
    for item in resources.files("storage_proxy").joinpath(PACKAGE_DIR).iterdir():
        if not item.is_file() or item.name.startswith("."):
            continue
        body = item.read_bytes()
        suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
        ctype = _TYPES.get(suffix) or mimetypes.guess_type(item.name)[0] or "text/plain"
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[item.name] = StaticFile(body, ctype, etag)
    return files


def serve(request: web.Request, file: StaticFile) -> web.Response:
    headers = {**SECURITY_HEADERS, "ETag": file.etag, "Cache-Control": "no-cache"}
    if file.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if file.content_type.startswith("text/") else None
    return web.Response(
        body=file.body, content_type=file.content_type, charset=charset, headers=headers
    )
