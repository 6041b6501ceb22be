"""The client API (people and programs) described in OpenAPI 3.1.

Downloads with a session token, tus 1.0.0 uploads, the ``/api/v1`` file API with a user token,
signed data-proxy locations, storage statistics, and the web UI's static files.
"""

from __future__ import annotations

from typing import Any

from ...core.files import MAX_FILE_META_BYTES
from .common import (
    BOOL,
    BYTES,
    ENTRY_TYPE,
    INT,
    STATUS,
    STR,
    TIME,
    array,
    document,
    header,
    media,
    nullable,
    obj,
    ok,
    op,
    path,
    query,
    self_description,
)
from .snapshots import client_paths as snapshot_paths
from .snapshots import client_version_paths as version_paths

TAG_HEALTH, TAG_DOWNLOAD, TAG_TUS, TAG_FILES = "health", "downloads", "tus uploads", "file API"
TAG_SIGNED, TAG_STATS, TAG_UI, TAG_DOCS = "signed locations", "statistics", "web UI", "reference"

PREFIX = "/api/v1/vfolders/{volume}/{scope}/{folder}"
VF_PARAMS = [
    path("volume", "the volume name"),
    path("scope", "the quota scope: user:<uuid> or project:<uuid>"),
    path("folder", "the vfolder's uuid (hex)"),
]
FILE_PARAMS = [*VF_PARAMS, path("path", "a path below the vfolder root")]
USER: list[dict[str, list[str]]] = [{"userToken": []}]
OPEN: list[dict[str, list[str]]] = []
RANGE = header("Range", "bytes=<first>-<last> (one range)")
DOWNLOAD_ANSWERS = {
    200: media("The file (typed by its name), or a directory as application/zip", "*/*"),
    206: media("The requested range", "*/*"),
    304: ok("Not modified (If-None-Match)"),
    412: ok("A precondition failed"),
}
UPLOAD_OFFSET = {"type": "string", "description": "bytes received so far"}
BGTASK_ID = {"type": "string", "description": "with progress=true: the task's id, sent at once"}
TUS_HEADERS = [header("Tus-Resumable", "1.0.0", required=True)]
TOKEN = query("token", "a session token from the manager API (or a signed link)")
UPLOAD_ID = path("upload_id", "the upload's id (from Location)")
FILE_META = obj(
    {
        "path": STR,
        "size": BYTES,
        "modified": TIME,
        "etag": STR,
        "sha256": nullable(STR),
        "content_type": nullable(STR),
        "tags": {"type": "object", "additionalProperties": STR},
    }
)

META_LIMIT = (
    f"tags and content type together at most {MAX_FILE_META_BYTES} bytes as JSON "
    '({"content_type":…,"tags":{…}}, no spaces), else 400 metadata-too-large'
)
UPLOAD_FORM = {
    "multipart/form-data": {
        "schema": obj(
            {
                "file": {
                    "type": "string",
                    "description": "the file; a part the body ends inside of (no closing "
                    "boundary) is never stored, nothing is replaced: 400 incomplete-body",
                }
            }
        )
    }
}
PROBLEM_BRIEF = obj({"code": STR, "status": INT, "detail": STR})
BATCH_RESULT = obj(
    {
        "stored": INT,
        "failed": INT,
        "aborted": nullable(PROBLEM_BRIEF),
        "results": array(
            obj(
                {
                    "name": STR,
                    "path": STR,
                    "type": STR,
                    "size": BYTES,
                    "sha256": STR,
                    "error": PROBLEM_BRIEF,
                },
                ["name"],
            )
        ),
        "bgtask_id": {"type": "string", "description": "with progress=true: its task's id"},
    },
    ["stored", "failed", "aborted", "results"],
)


def _health() -> dict[str, Any]:
    status = {"get": op("Liveness and version", TAG_HEALTH, {200: ok("OK", STATUS)}, security=OPEN)}
    return {"/": status, "/status": status}


def _download() -> dict[str, Any]:
    return {
        "/download": {
            "get": op(
                "Download with a session token (ranges, validators; directories as zip)",
                TAG_DOWNLOAD,
                DOWNLOAD_ANSWERS,
                params=[TOKEN, query("archive", "true: a directory as zip"), RANGE],
                security=OPEN,
            )
        },
        "/download-archive": {
            "get": op(
                "Several files and directories of one vfolder as one zip (an archive token)",
                TAG_DOWNLOAD,
                {200: media("The archive (ZIP64)", "application/zip", X_BgTask_Id=BGTASK_ID)},
                description="The token comes from POST /folder/file/archive-download-token on "
                "the manager API; each path is looked up before the answer starts (404 missing — "
                "text/plain '404: File not found: <path>' in the 26.09 dialect — 400 malformed, "
                "out of the vfolder or a link, 400 not-a-regular-file for a FIFO, socket or "
                "device, which is never opened). Inside a named directory such entries are left "
                "out of the zip, as in every directory archive. An error after the answer has "
                "started cuts the connection: the zip ends short (no closing chunk).",
                params=[
                    TOKEN,
                    query(
                        "progress",
                        "true: sent by a background task (archive-download) whose progress "
                        "events (files and bytes in the zip so far) the manager API's "
                        "/bgtask/{id}/events streams; cancelling it cuts the download",
                    ),
                ],
                security=OPEN,
            )
        },
    }


def _tus_ops(created_by_token: bool) -> dict[str, Any]:
    params = [*TUS_HEADERS] + ([TOKEN] if created_by_token else [UPLOAD_ID, TOKEN])
    progress = ok("", Upload_Offset=UPLOAD_OFFSET, Upload_Expires=STR)
    state = ok(
        "The offset; Upload-Length (or Upload-Defer-Length: 1); Upload-Concat for a partial "
        "('partial') or final ('final;<url> <url> ...') upload",
        Upload_Offset=UPLOAD_OFFSET,
        Upload_Expires=STR,
        Upload_Length=STR,
        Upload_Concat=STR,
    )
    return {
        "options": op(
            "tus capabilities (Tus-Version, Tus-Extension, Tus-Max-Size)",
            TAG_TUS,
            {204: ok("Capabilities")},
            security=OPEN,
            params=[] if created_by_token else [UPLOAD_ID],
        ),
        "head": op("Current offset of an upload", TAG_TUS, {200: state}, params=params),
        "patch": op(
            "Append bytes at Upload-Offset (checksum extension: Upload-Checksum)",
            TAG_TUS,
            {204: progress, 460: {"$ref": "#/components/responses/Problem"}},
            description="A final (concatenated) upload takes no PATCH (403 "
            "upload-final-immutable); a partial one joined by a final upload is gone (404).",
            params=[*params, header("Upload-Offset", "where these bytes go", required=True)],
            body_media={"application/offset+octet-stream": {"schema": {"type": "string"}}},
        ),
        "delete": op("Terminate an upload", TAG_TUS, {204: ok("Terminated")}, params=params),
    }


def _tus() -> dict[str, Any]:
    create = op(
        "Create an upload (tus creation, creation-with-upload, creation-defer-length, "
        "concatenation)",
        TAG_TUS,
        {
            201: ok(
                "Created; Location names it (a final upload answers with its joined length as "
                "Upload-Offset and Upload-Length: it is already stored)",
                Location=STR,
                Upload_Expires=STR,
                Upload_Offset=STR,
                Upload_Length=STR,
            )
        },
        description="With a user token: Upload-Metadata carries volume, vfid and path (base64). "
        "With ?token= (a manager-issued upload token) the session already exists. "
        "Concatenation (user token only): 'Upload-Concat: partial' creates a partial upload "
        "(same metadata, permission, quota reservation and staging as any upload; complete, it "
        "stays staged instead of being published). 'Upload-Concat: final;<url> <url> ...' "
        "(no Upload-Length, no body) joins the named complete partial uploads, in order, into "
        "the file at path — sharing blocks instead of copying where the volume allows — and "
        "releases them (staged bytes removed, quota handed back). Each partial must be the "
        "caller's own and of the same vfolder (another user's: 404 upload-not-found; another "
        "vfolder's, a plain upload or one named twice: 400 upload-concat-invalid); an "
        "unfinished one: 400 upload-partial-incomplete; one receiving bytes right now: 409; a "
        "malformed header: 400 invalid-upload-concat.",
        params=[
            *TUS_HEADERS,
            TOKEN,
            header("Upload-Length", "the whole size"),
            header("Upload-Defer-Length", "1: declared later"),
            header("Upload-Metadata", "volume, vfid, path (base64 values)"),
            header(
                "Upload-Concat",
                "'partial', or 'final;' and the space-separated URLs (absolute or relative, "
                "ending in /upload/<id>) of the partial uploads to join, at most 256",
            ),
        ],
        body_required=False,
        body_media={"application/offset+octet-stream": {"schema": {"type": "string"}}},
    )
    put = op(
        "Store a whole body at once with an upload token (all or nothing)",
        TAG_TUS,
        {201: ok("Stored")},
        params=[TOKEN],
        body_media={"application/octet-stream": {"schema": {"type": "string"}}},
        security=OPEN,
    )
    return {
        "/upload": {**_tus_ops(True), "post": create, "put": put},
        "/upload/{upload_id}": _tus_ops(False),
    }


def _files() -> dict[str, Any]:
    vfolder = obj(
        {
            "volume": STR,
            "vfid": STR,
            "owner": nullable(STR),
            "kind": STR,
            "permission": {"enum": ["ro", "rw", "rwd"]},
        }
    )
    listing = obj(
        {
            "files": array(obj({"path": STR, "size": BYTES, "modified": TIME, "type": STR})),
            "truncated": BOOL,
            "next_marker": nullable(STR),
        }
    )
    tags = header("X-Tags", f"a JSON object of strings stored with the file; {META_LIMIT}")
    form = UPLOAD_FORM
    upload_answer = {201: ok("Stored", FILE_META)}
    return {
        "/api/v1/vfolders": {
            "get": op(
                "The vfolders the user can see",
                TAG_FILES,
                {200: ok("", obj({"vfolders": array(vfolder)}))},
            )
        },
        PREFIX + "/files": {
            "get": op(
                "Every file below the vfolder in key order (S3-style paging)",
                TAG_FILES,
                {200: ok("", listing)},
                params=[
                    *VF_PARAMS,
                    query("prefix", "only paths starting so"),
                    query("marker", "after this path"),
                    query("limit", "1..10000", INT),
                ],
            ),
            "post": op(
                "Upload a file into the root (multipart 'file')",
                TAG_FILES,
                upload_answer,
                params=[*VF_PARAMS, tags],
                body_media=form,
            ),
        },
        PREFIX + "/files/{path}": {
            "get": op(
                "Download (RO)",
                TAG_FILES,
                DOWNLOAD_ANSWERS,
                params=[*FILE_PARAMS, query("archive", "true: a directory as zip"), RANGE],
            ),
            "put": op(
                "Upload the body to path (RW); sha256 and MD5 computed while streaming",
                TAG_FILES,
                upload_answer,
                params=[*FILE_PARAMS, tags, query("overwrite", "false: 409 if it exists")],
                body_media={"application/octet-stream": {"schema": {"type": "string"}}},
            ),
            "post": op(
                "Upload a form's 'file' part into a folder (path ending in /) or to path",
                TAG_FILES,
                upload_answer,
                params=[*FILE_PARAMS, tags],
                body_media=form,
            ),
            "delete": op(
                "Delete (RWD)",
                TAG_FILES,
                {204: ok("Deleted")},
                params=[*FILE_PARAMS, query("recursive", "true: a directory and all below it")],
            ),
        },
        **_file_ops(),
        **_browse(),
    }


def _file_ops() -> dict[str, Any]:
    return {
        PREFIX + "/metadata/{path}": {
            "get": op(
                "Size, ETag, sha256, content type and tags (RO)",
                TAG_FILES,
                {200: ok("", FILE_META)},
                params=FILE_PARAMS,
            ),
            "patch": op(
                "Change the content type and/or replace the tags (RW)",
                TAG_FILES,
                {200: ok("", FILE_META)},
                description=f"Limit: {META_LIMIT}. More than the file's "
                "extended attributes hold is a 400 metadata-too-large as well.",
                params=FILE_PARAMS,
                body=obj(
                    {"content_type": STR, "tags": {"type": "object", "additionalProperties": STR}},
                    [],
                ),
            ),
        },
        PREFIX + "/mkdir": {
            "post": op(
                "Create a directory and its parents (RW)",
                TAG_FILES,
                {201: ok("", obj({"path": STR}))},
                params=VF_PARAMS,
                body=obj({"path": STR, "exist_ok": BOOL}, ["path"]),
            )
        },
        PREFIX + "/batch": {
            "post": op(
                "Upload many files in one request (RW): a tar stream or a multipart form, each"
                " file stored as a single upload of it would be, with a result for each",
                TAG_FILES,
                {200: ok("Every item's outcome, in order", BATCH_RESULT, X_BgTask_Id=BGTASK_ID)},
                description="A stream that cannot be read on ends the batch: what was stored "
                "before stays, `aborted` tells why (a 400 problem). A part the body ends inside "
                "of (no closing boundary) is not stored: aborted with incomplete-body.",
                params=[
                    *VF_PARAMS,
                    query("path", "the folder the files land below (default: the root)"),
                    query("overwrite", "false: an existing file is an error for that item"),
                    query(
                        "progress",
                        "true: run as a background task (batch-upload) whose progress events"
                        " (files done, bytes stored) the manager API's /bgtask/{id}/events"
                        " streams; its id is in the X-BgTask-Id header, sent at once",
                    ),
                    query("files", "with progress: how many items the body holds (the total)"),
                ],
                body_media={
                    "application/x-tar": {"schema": {"type": "string"}},
                    "multipart/form-data": {"schema": obj({"file": {"type": "string"}}, [])},
                },
            )
        },
        PREFIX + "/move": {
            "post": op(
                "Move or rename (RW)",
                TAG_FILES,
                {200: ok("", obj({"src": STR, "dst": STR}))},
                params=VF_PARAMS,
                body=obj({"src": STR, "dst": STR}),
            )
        },
    }


def _browse() -> dict[str, Any]:
    entry = obj(
        {
            "name": STR,
            "path": STR,
            "type": ENTRY_TYPE,
            "size": BYTES,
            "modified": TIME,
        }
    )
    page = obj(
        {"path": STR, "entries": array(entry), "truncated": BOOL, "next_marker": nullable(STR)}
    )
    link = obj(
        {
            "path": {
                "type": "string",
                "description": "/download?token=…, relative to the client API",
            },
            "url": STR,
            "expires_at": TIME,
            "archive": {"type": "boolean", "description": "a directory, served as a zip"},
        }
    )
    expires = {
        "oneOf": [{"type": "number"}, {"type": "string"}],
        "description": "seconds or 15m, 1h, 7d …",
    }
    return {
        PREFIX + "/dir": {
            "get": op(
                "One directory's direct children in name order, paged (RO)",
                TAG_FILES,
                {200: ok("", page)},
                params=[
                    *VF_PARAMS,
                    query("path", "the directory (default: the root)"),
                    query("marker", "the last name of the previous page"),
                    query("limit", "1..1000 (default 100)", INT),
                ],
            )
        },
        PREFIX + "/links": {
            "post": op(
                "A signed download link with an expiry (RO)",
                TAG_FILES,
                {201: ok("", link)},
                description="Capped by [storage-proxy] download-link-max-expire "
                "(400 naming the limit).",
                params=VF_PARAMS,
                body=obj({"path": STR, "expires_in": nullable(expires)}, ["path"]),
            )
        },
    }


def _signed() -> dict[str, Any]:
    tok = [path("token", "the signed location's token")]
    return {
        "/signed/{token}": {
            "put": op(
                "Upload to a signed location (Content-MD5 and length checked)",
                TAG_SIGNED,
                {201: ok("Stored", ETag=STR)},
                params=[*tok, header("Content-MD5", "base64 MD5 the location was signed for")],
                body_media={"application/octet-stream": {"schema": {"type": "string"}}},
                security=OPEN,
            ),
            "get": op(
                "Download from a signed location",
                TAG_SIGNED,
                DOWNLOAD_ANSWERS,
                params=[*tok, RANGE],
                security=OPEN,
            ),
        }
    }


def _stats() -> dict[str, Any]:
    volume = obj(
        {
            "name": STR,
            "backend": STR,
            "status": {"enum": ["ok", "down"]},
            "detail": STR,
            "capacity_bytes": BYTES,
            "used_bytes": BYTES,
            "free_bytes": BYTES,
        },
        ["name", "backend", "status"],
    )
    largest = array(obj({"path": STR, "bytes": BYTES, "objects": INT}))
    vfolder = obj(
        {
            "volume": STR,
            "vfid": STR,
            "permission": {"enum": ["ro", "rw", "rwd"]},
            "objects": INT,
            "bytes": BYTES,
            "quota_bytes": nullable(BYTES),
            "quota_source": nullable({"enum": ["vfolder", "quota-scope"]}),
            "largest_directories": largest,
            "partial": BOOL,
        },
        ["volume", "vfid", "permission", "objects", "bytes", "quota_bytes", "quota_source"],
    )
    stats = obj({"volumes": array(volume), "vfolders": array(vfolder)})
    health = obj(
        {
            "status": {"enum": ["ok", "degraded"]},
            "down": array(STR),
            "volumes": array(
                obj(
                    {"name": STR, "backend": STR, "status": STR, "detail": STR},
                    ["name", "backend", "status"],
                )
            ),
        }
    )
    return {
        "/api/v1/storage/stats": {
            "get": op(
                "Objects, bytes, quota and free space of what the user can see",
                TAG_STATS,
                {200: ok("", stats)},
                description="With volume and vfid: that vfolder alone, with its largest "
                "directories.",
                params=[
                    query("volume", "narrow to one vfolder: its volume"),
                    query("vfid", "…and its id"),
                ],
            )
        },
        "/api/v1/storage/health": {
            "get": op(
                "Whether the volumes the user can see answer",
                TAG_STATS,
                {200: ok("All answer", health), 503: ok("One is down", health)},
            )
        },
    }


def _ui() -> dict[str, Any]:
    page = media("The page", "text/html")
    return {
        "/ui": {"get": op("Redirects to /ui/", TAG_UI, {308: ok("To /ui/")}, security=OPEN)},
        "/ui/": {
            "get": op(
                "The web file browser", TAG_UI, {200: page, 304: ok("Not modified")}, security=OPEN
            )
        },
        "/ui/{name}": {
            "get": op(
                "A file of the web UI (script, style, page)",
                TAG_UI,
                {
                    200: media("The file", "text/html", "text/javascript", "text/css"),
                    304: ok("Not modified"),
                },
                params=[path("name", "the file name")],
                security=OPEN,
            )
        },
    }


def _snapshots_and_versions() -> dict[str, Any]:
    return {
        **snapshot_paths(PREFIX, VF_PARAMS, DOWNLOAD_ANSWERS, RANGE),
        **version_paths(PREFIX, FILE_PARAMS, DOWNLOAD_ANSWERS, RANGE),
    }


def client_description() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for part in (_health, _download, _tus, _files, _snapshots_and_versions, _signed, _stats, _ui):
        paths.update(part())
    paths.update(self_description(TAG_DOCS))
    return document(
        "storage-proxy client API",
        "For people and programs: downloads with a session token, tus uploads, the /api/v1 file "
        "API with a user token (Authorization: Bearer; mint one with POST /token on the manager "
        "API or `storage-proxy token issue`), signed locations, statistics, and the web UI at "
        "/ui/. An error after a streamed answer has started (a zip, a download) cannot be "
        "answered any more: the connection is cut, so the body ends short (no closing chunk).",
        paths,
        schemas={"FileMeta": FILE_META},
        security_schemes={"userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        security=USER,
    )


__all__ = ["client_description"]
