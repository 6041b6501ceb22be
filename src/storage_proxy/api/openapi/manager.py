"""The manager API (Backend.AI 26.09-compatible, 23.09 on request; plus extensions), described
in OpenAPI 3.1.

Parameters of these routes may come from a JSON body (as the Backend.AI manager sends them, even
on GET) or from the query string; the request bodies below name them.  Where the two dialects
(``[api.manager] compat``) answer a route differently, both answers are described, each saying
which dialect gives it.  Backend.AI's own error shapes that are not problems — 400 ``{"msg",
"errno", "paths"}`` of a refused file operation, 409 ``{"msg"}`` — fall under ``default``.
"""

from __future__ import annotations

from typing import Any

from .audit import audit_paths as _audit
from .bai import HEALTH, bai_paths, health_paths
from .common import (
    ANY,
    BOOL,
    BYTES,
    INT,
    NUM,
    STATUS,
    STR,
    TIME,
    array,
    document,
    media,
    nullable,
    obj,
    ok,
    op,
    path,
    ref,
    self_description,
)
from .snapshots import manager_paths as _snapshots
from .snapshots import manager_version_paths as _versions

TAG_HEALTH, TAG_VOLUMES, TAG_QUOTA, TAG_FOLDERS = "health", "volumes", "quota scopes", "vfolders"
TAG_FILES, TAG_ACL, TAG_TASKS, TAG_DATAPROXY = "files", "access", "background tasks", "dataproxy"
TAG_TOKENS, TAG_DOCS = "tokens", "reference"

VOLUME = {"volume": {"type": "string", "description": "a configured volume name"}}
VFOLDER = {
    **VOLUME,
    "vfid": {"type": "string", "description": "<quota-scope-id>/<uuid-hex>"},
}
QSID = {"qsid": {"type": "string", "description": "user:<uuid> or project:<uuid>"}}
RELPATH = {"type": "string", "description": "a path relative to the vfolder root"}
DURATION = {
    "oneOf": [{"type": "number"}, {"type": "string"}],
    "description": "seconds, or a duration such as 30s, 15m, 1h, 1d",
}
BACKGROUND = {"background": {"type": "boolean", "description": "answer 202 {bgtask_id} at once"}}
USAGE = obj({"used_bytes": BYTES, "limit_bytes": nullable(BYTES)})
TASK_STARTED = obj({"bgtask_id": STR})


def body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return obj(props, required)


def _health() -> dict[str, Any]:
    status = {"get": op("Liveness and version", TAG_HEALTH, {200: ok("OK", STATUS)}, security=[])}
    return {"/": status, "/status": status, **health_paths(TAG_HEALTH, STATUS)}


def _volumes() -> dict[str, Any]:
    volume = obj(
        {"name": STR, "backend": STR, "path": STR, "fsprefix": STR, "capabilities": array(STR)}
    )
    return {
        "/volumes": {
            "get": op(
                "Configured volumes", TAG_VOLUMES, {200: ok("", obj({"volumes": array(volume)}))}
            )
        },
        "/volume/hwinfo": {
            "get": op(
                "Hardware status of a volume (Backend.AI shape)",
                TAG_VOLUMES,
                {200: ok("", obj({"status": STR, "status_info": nullable(STR), "metadata": ANY}))},
                body=body(VOLUME),
                body_required=False,
            )
        },
    }


def _quota() -> dict[str, Any]:
    options = {"options": nullable(obj({"limit_bytes": BYTES}))}
    return {
        "/quota-scope": {
            "post": op(
                "Create a quota scope",
                TAG_QUOTA,
                {204: ok("Created")},
                body=body({**VOLUME, **QSID, **options}, ["volume", "qsid"]),
            ),
            "get": op(
                "Usage and limit of a quota scope",
                TAG_QUOTA,
                {200: ok("", USAGE)},
                body=body({**VOLUME, **QSID}),
                body_required=False,
            ),
            "patch": op(
                "Set a quota scope's limit (creates the scope if missing)",
                TAG_QUOTA,
                {204: ok("Updated")},
                body=body({**VOLUME, **QSID, **options}),
            ),
        },
        "/quota-scope/quota": {
            "delete": op(
                "Remove a quota scope's limit",
                TAG_QUOTA,
                {204: ok("Removed")},
                body=body({**VOLUME, **QSID}),
            )
        },
    }


def _folders() -> dict[str, Any]:
    create = body(
        {
            **VFOLDER,
            "mode": INT,
            "options": nullable({"type": "object"}),
            "owner": nullable(STR),
            "kind": {"enum": ["user", "group"]},
        },
        ["volume", "vfid"],
    )
    clone = body(
        {
            "src_volume": STR,
            "src_vfid": STR,
            "dst_volume": nullable(STR),
            "dst_vfid": STR,
            **BACKGROUND,
        },
        ["src_volume", "src_vfid", "dst_vfid"],
    )
    task_answer = {
        204: ok("23.09: done (X-BgTask-ID names the task)"),
        202: ok("Started (26.09 delete; 23.09 with background)", TASK_STARTED),
    }
    clone_answer = {**task_answer, 200: ok("26.09: started", TASK_STARTED)}
    vf = body(VFOLDER)
    return {
        "/folder/create": {
            "post": op("Create a vfolder", TAG_FOLDERS, {204: ok("Created")}, body=create)
        },
        "/folder/delete": {
            "post": op(
                "Delete a vfolder (a background task; to the trash first)",
                TAG_FOLDERS,
                task_answer,
                body=body({**VFOLDER, **BACKGROUND}, ["volume", "vfid"]),
            )
        },
        "/folder/clone": {
            "post": op("Clone a vfolder (a background task)", TAG_FOLDERS, clone_answer, body=clone)
        },
        "/folder/mount": {
            "get": op(
                "Host path of a vfolder",
                TAG_FOLDERS,
                {200: ok("", obj({"path": STR}))},
                body=body({**VFOLDER, "subpath": RELPATH}, ["volume", "vfid"]),
                body_required=False,
            )
        },
        "/folder/usage": {
            "get": op(
                "Files and bytes of a vfolder",
                TAG_FOLDERS,
                {200: ok("", obj({"file_count": INT, "used_bytes": BYTES}))},
                body=vf,
                body_required=False,
            )
        },
        "/folder/used-bytes": {
            "get": op(
                "Bytes of a vfolder",
                TAG_FOLDERS,
                {200: ok("", obj({"used_bytes": BYTES}))},
                body=vf,
                body_required=False,
            )
        },
        "/folder/fs-usage": {
            "get": op(
                "Capacity and use of a volume",
                TAG_FOLDERS,
                {200: ok("", obj({"capacity_bytes": BYTES, "used_bytes": BYTES}))},
                body=body(VOLUME),
                body_required=False,
            )
        },
        **_folder_settings(),
    }


def _folder_settings() -> dict[str, Any]:
    vf = body(VFOLDER)
    return {
        "/folder/quota": {
            "get": op(
                "A vfolder's own quota",
                TAG_FOLDERS,
                {200: ok("", USAGE)},
                body=vf,
                body_required=False,
            ),
            "patch": op(
                "Set or remove (null) a vfolder's own quota",
                TAG_FOLDERS,
                {204: ok("Updated")},
                body=body({**VFOLDER, "limit_bytes": nullable(BYTES)}),
            ),
        },
        "/folder/retention": {
            "get": op(
                "Retention of a vfolder (days) and its volume's",
                TAG_FOLDERS,
                {200: ok("", obj({"days": nullable(NUM), "volume_days": nullable(NUM)}))},
                body=vf,
                body_required=False,
            ),
            "put": op(
                "Set a vfolder's retention in days (0: exempt; null: follow the volume)",
                TAG_FOLDERS,
                {204: ok("Updated")},
                body=body({**VFOLDER, "days": nullable(NUM)}),
            ),
        },
    }


def _files() -> dict[str, Any]:
    stat = obj({"mode": INT, "size": BYTES, "created": TIME, "modified": TIME})
    item = obj(
        {
            "name": STR,
            "type": {"enum": ["FILE", "DIRECTORY", "SYMLINK"]},
            "stat": stat,
            "symlink_target": STR,
        }
    )
    results = obj(
        {
            "results": obj(
                {
                    "success": array(obj({"item": STR, "msg": nullable(STR)})),
                    "failed": array(obj({"item": STR, "msg": STR, "code": STR})),
                }
            )
        }
    )
    mkdir_body = body(
        {
            **VFOLDER,
            "relpath": {"oneOf": [RELPATH, array(RELPATH)], "description": "one path or up to 50"},
            "parents": BOOL,
            "exist_ok": BOOL,
        },
        ["volume", "vfid", "relpath"],
    )
    return {
        "/folder/file/mkdir": {
            "post": op(
                "Create directories",
                TAG_FILES,
                {
                    204: ok("23.09: created (one path; a list is a 400 there)"),
                    200: ok("All created", results),
                    207: ok("Some failed", results),
                    422: ok("All failed", results),
                },
                body=mkdir_body,
            )
        },
        "/folder/file/list": {
            "post": op(
                "List a directory",
                TAG_FILES,
                {200: ok("", obj({"items": array(item)}))},
                body=body({**VFOLDER, "relpath": RELPATH}, ["volume", "vfid"]),
            )
        },
        "/folder/file/rename": {
            "post": op(
                "Rename a file or directory",
                TAG_FILES,
                {204: ok("Renamed")},
                body=body(
                    {**VFOLDER, "relpath": RELPATH, "new_name": STR, "is_dir": BOOL},
                    ["volume", "vfid", "relpath", "new_name"],
                ),
            )
        },
        "/folder/file/move": {
            "post": op(
                "Move a file or directory",
                TAG_FILES,
                {204: ok("Moved")},
                body=body({**VFOLDER, "src_relpath": RELPATH, "dst_relpath": RELPATH}),
            )
        },
        **_file_transfers(),
    }


def _file_transfers() -> dict[str, Any]:
    token = obj({"token": STR})
    return {
        "/folder/file/delete": {
            "post": op(
                "Delete files",
                TAG_FILES,
                {200: ok("", obj({"status": {"const": "ok"}}))},
                body=body(
                    {**VFOLDER, "relpaths": array(RELPATH), "recursive": BOOL},
                    ["volume", "vfid", "relpaths"],
                ),
            )
        },
        "/folder/file/download": {
            "post": op(
                "A download session token for GET /download on the client API",
                TAG_FILES,
                {200: ok("", token)},
                body=body(
                    {
                        **VFOLDER,
                        "relpath": RELPATH,
                        "archive": BOOL,
                        "unmanaged_path": nullable(STR),
                        "version_id": nullable(
                            {
                                **STR,
                                "description": "a kept version of the file (POST "
                                "/folder/file/versions lists them): the token downloads that "
                                "version; not with archive",
                            }
                        ),
                    },
                    ["volume", "vfid", "relpath"],
                ),
            )
        },
        "/folder/file/upload": {
            "post": op(
                "An upload session token for /upload on the client API (size reserved)",
                TAG_FILES,
                {200: ok("", token)},
                body=body({**VFOLDER, "relpath": RELPATH, "size": BYTES}),
            )
        },
    }


def _acl() -> dict[str, Any]:
    principal = {"type": "string", "pattern": "^(user|group):[^\\s:]+$"}
    permission = {"enum": ["ro", "rw", "rwd"]}
    acl = obj(
        {
            "owner": nullable(STR),
            "kind": STR,
            "entries": array(obj({"principal": principal, "permission": permission})),
        }
    )
    grant = body({**VFOLDER, "principal": principal, "permission": permission})
    return {
        "/folder/acl": {
            "get": op(
                "Owner and ACL of a vfolder",
                TAG_ACL,
                {200: ok("", acl)},
                body=body(VFOLDER),
                body_required=False,
            ),
            "put": op(
                "Set owner and kind, replace every entry",
                TAG_ACL,
                {200: ok("The new ACL", acl)},
                body=body(
                    {
                        **VFOLDER,
                        "owner": STR,
                        "kind": {"enum": ["user", "group"]},
                        "entries": array(obj({"principal": principal, "permission": permission})),
                    },
                    ["volume", "vfid", "owner"],
                ),
            ),
        },
        "/folder/acl/grant": {
            "post": op("Grant a permission", TAG_ACL, {200: ok("The new ACL", acl)}, body=grant)
        },
        "/folder/acl/revoke": {
            "post": op(
                "Revoke a principal's entry",
                TAG_ACL,
                {200: ok("The new ACL", acl)},
                body=body({**VFOLDER, "principal": principal}, ["volume", "vfid", "principal"]),
            )
        },
    }


def _tasks() -> dict[str, Any]:
    task_id = path("task_id", "the task id")
    name = path("name", "a job name (usage-scan, orphan-scan, trash-purge, retention, scrub, …)")
    job = obj(
        {
            "name": STR,
            "interval": nullable(NUM),
            "last_task_id": nullable(STR),
            "last_finished_at": nullable(NUM),
        }
    )
    last = obj(
        {"job": STR, "bgtask_id": nullable(STR), "finished_at": nullable(NUM), "result": ANY},
        ["job", "bgtask_id", "result"],
    )
    return {
        "/bgtask/{task_id}": {
            "get": op(
                "State and progress of a background task",
                TAG_TASKS,
                {200: ok("", ref("BgTask"))},
                params=[task_id],
            ),
            "delete": op(
                "Cancel a background task",
                TAG_TASKS,
                {200: ok("", ref("BgTask"))},
                params=[task_id],
            ),
        },
        "/bgtask/{task_id}/events": {
            "get": op(
                "Progress as server-sent events (bgtask_updated, bgtask_done, …, server_close)",
                TAG_TASKS,
                {200: media("An event stream", "text/event-stream")},
                params=[task_id],
            )
        },
        "/jobs": {"get": op("Periodic jobs", TAG_TASKS, {200: ok("", obj({"jobs": array(job)}))})},
        "/jobs/orphans": {
            "get": op("The last orphan scan's report", TAG_TASKS, {200: ok("", last)})
        },
        "/jobs/{name}": {
            "get": op("A job's last result", TAG_TASKS, {200: ok("", last)}, params=[name]),
            "post": op(
                "Run a job now", TAG_TASKS, {202: ok("Started", TASK_STARTED)}, params=[name]
            ),
        },
    }


def _dataproxy() -> dict[str, Any]:
    upload = body(
        {
            "project": STR,
            "domain": STR,
            "content_md5": {"type": "string", "description": "base64 of the 16-byte MD5"},
            "filename": nullable(STR),
            "filename_root": nullable(STR),
            "content_length": nullable(BYTES),
            "expires_in": nullable(DURATION),
        },
        ["project", "domain", "content_md5"],
    )
    location = obj(
        {
            "signed_url": STR,
            "native_url": STR,
            "expires_at": TIME,
            "headers": {"type": "object", "additionalProperties": STR},
        }
    )
    return {
        "/dataproxy/upload-location": {
            "post": op(
                "A signed upload location", TAG_DATAPROXY, {200: ok("", location)}, body=upload
            )
        },
        "/dataproxy/download-link": {
            "post": op(
                "A signed download link",
                TAG_DATAPROXY,
                {200: ok("", obj({"signed_url": STR, "expires_at": TIME}))},
                body=body({"native_url": STR, "expires_in": nullable(DURATION)}, ["native_url"]),
            )
        },
    }


def _tokens() -> dict[str, Any]:
    request = body(
        {
            "user": {"type": "string", "description": "the user id (no blanks, no ':')"},
            "groups": array(STR),
            "expires_in": nullable(DURATION),
        },
        ["user"],
    )
    answer = obj(
        {
            "token": {"type": "string", "description": "an HS256 JWT: sub, groups, iat, exp"},
            "expires_at": TIME,
            "ui_url": {
                "type": "string",
                "description": "the web UI, signed in (token in the URL fragment)",
            },
        }
    )
    return {
        "/token": {
            "post": op(
                "Mint a user token for the client API, the file API and the web UI",
                TAG_TOKENS,
                {200: ok("", answer)},
                description="The lifetime defaults to [storage-proxy] user-token-expire and may "
                "not exceed user-token-max-expire (400 naming the limit).",
                body=request,
            )
        }
    }


BGTASK = obj(
    {
        "task_id": STR,
        "kind": STR,
        "status": {"enum": ["pending", "running", "done", "failed", "cancelled", "interrupted"]},
        "current_progress": NUM,
        "total_progress": nullable(NUM),
        "message": STR,
        "params": {"type": "object"},
        "result": ANY,
        "error": nullable({"type": "object"}),
        "created_at": NUM,
        "updated_at": NUM,
        "finished_at": nullable(NUM),
    }
)


def manager_description() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for part in (
        _health,
        bai_paths,
        _volumes,
        _quota,
        _folders,
        _files,
        _acl,
        _tasks,
        _dataproxy,
        _tokens,
        _audit,
        _snapshots,
        _versions,
    ):
        paths.update(part())
    paths.update(self_description(TAG_DOCS))
    return document(
        "storage-proxy manager API",
        "For the cluster manager (Backend.AI 26.09-compatible, 23.09 with [api.manager] compat, "
        "plus extensions). Every route but /, /status, /health, /livez, /readyz, /openapi.json "
        "and /docs needs the shared secret in X-BackendAI-Storage-Auth-Token.",
        paths,
        schemas={"BgTask": BGTASK, "Health": HEALTH},
        security_schemes={
            "managerSecret": {
                "type": "apiKey",
                "in": "header",
                "name": "X-BackendAI-Storage-Auth-Token",
            }
        },
        security=[{"managerSecret": []}],
    )
