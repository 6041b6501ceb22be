"""Keys are made canonical before anything authorizes them.

The path is percent-decoded exactly once (S3 decodes once too: ``%252E`` is the key ``%2E``);
then a ``.`` or ``..`` segment, an empty segment (``a//b``), a backslash or a NUL anywhere in the
key is refused with 403 AccessDenied — never normalised, never redirected. A client that removes
dot segments itself (curl, browsers) would otherwise fetch something other than what was
authorized. Only the bucket may be followed by one trailing ``/`` (``GET /datalake/``).
"""

from __future__ import annotations

from urllib.parse import unquote

from .errors import access_denied

_FORBIDDEN_CHARS = ("\\", "\x00")
_DOT_SEGMENTS = (".", "..")


def canonical_path(raw_path: str) -> str:
    """``/bucket/key`` decoded once; AccessDenied unless it is canonical."""
    raw = raw_path.partition("?")[0]
    try:
        path = unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError:
        raise _refuse() from None
    if not path.startswith("/"):
        raise _refuse()
    bucket, sep, key = path[1:].partition("/")
    if any(c in path for c in _FORBIDDEN_CHARS):
        raise _refuse()
    if not sep or not key:
        if bucket in _DOT_SEGMENTS:
            raise _refuse()
        return path
    for segment in [bucket, *key.split("/")]:
        if segment in _DOT_SEGMENTS or not segment:
            raise _refuse()
    return path


def _refuse() -> Exception:
    return access_denied("key-not-canonical", "The key is not canonical (dot or empty segment).")
