"""Snapshots of vfolders and versions of files, as both doors describe them (manager routes and
the file API)."""

from __future__ import annotations

from typing import Any

from .common import BOOL, BYTES, INT, STR, TIME, array, nullable, obj, ok, op, path, query

TAG, TAG_VERSIONS = "snapshots", "versions"
SNAPSHOT = obj(
    {
        "snapshot_id": STR,
        "name": STR,
        "created": TIME,
        "size": nullable({**BYTES, "description": "bytes it holds, where the storage knows"}),
    }
)
_ID = {"type": "string", "description": "letters, digits, '_' and '-' (at most 64)"}
_RELPATH = {"type": "string", "description": "a path relative to the vfolder root"}
_VFOLDER = {
    "volume": {"type": "string", "description": "a configured volume name"},
    "vfid": {"type": "string", "description": "<quota-scope-id>/<uuid-hex>"},
}
_BACKGROUND = {"background": {"type": "boolean", "description": "answer 202 {bgtask_id} at once"}}
_STARTED = obj({"bgtask_id": STR, "snapshot_id": STR})
_TASK_BY_COPY = obj(
    {"bgtask_id": STR, "volume": STR, "vfid": STR, **SNAPSHOT["properties"]},
    ["bgtask_id", "snapshot_id", "name", "created"],
)
_RESTORED = obj(
    {
        "bgtask_id": STR,
        "volume": STR,
        "vfid": STR,
        "snapshot_id": STR,
        "relpaths": array(STR),
        "into": nullable(STR),
        "files": INT,
        "bytes": BYTES,
    }
)
_STAT = obj({"mode": INT, "size": BYTES, "created": TIME, "modified": TIME})
_ITEM = obj(
    {
        "name": STR,
        "path": STR,
        "type": {"enum": ["FILE", "DIRECTORY", "SYMLINK"]},
        "stat": _STAT,
        "symlink_target": STR,
    }
)

_EVERY = {
    "oneOf": [STR, INT],
    "description": "how often: a duration such as '1h', '30m', '1d' (whole seconds, at least 1)",
}
_KEEPS = {
    "keep_last": {**INT, "description": "keep the N newest policy snapshots"},
    "keep_daily": {
        **INT,
        "description": "keep the newest policy snapshot of each of the N newest days (UTC) "
        "that have one; with keep_last, the union; at least one of the two above 0",
    },
}
POLICY = obj({"every": {**INT, "description": "seconds"}, **_KEEPS})
_POLICY_VIEW = obj(
    {
        "policy": nullable({**POLICY, "description": "the vfolder's (or the scope's) own"}),
        "scope_policy": nullable({**POLICY, "description": "its quota scope's (a vfolder's)"}),
        "effective": nullable({**POLICY, "description": "the one the job applies"}),
        "source": nullable({"enum": ["vfolder", "quota-scope"]}),
    }
)
_POLICY_SET = obj({"every": _EVERY, **_KEEPS}, ["every"])
_POLICY_NOTE = (
    "A policy takes a snapshot named auto-<slot start, UTC> once per 'every' (the job "
    "snapshot-policies, under its lease: one worker of one node) and prunes only its own "
    "auto- snapshots; a vfolder's own policy wins over its quota scope's. Manual snapshot "
    "names may not start with 'auto-'."
)


def _policy_paths() -> dict[str, Any]:
    target = {
        "volume": _VFOLDER["volume"],
        "vfid": {**_VFOLDER["vfid"], "description": "a vfolder (or qsid, not both)"},
        "qsid": {"type": "string", "description": "a quota scope (or vfid, not both)"},
    }
    return {
        "/folder/snapshot/policy": {
            "get": op(
                "A vfolder's or a quota scope's snapshot policy",
                TAG,
                {200: ok("", _POLICY_VIEW)},
                description=_POLICY_NOTE,
                body=obj(target, ["volume"]),
                body_required=False,
            ),
            "put": op(
                "Set a vfolder's or a quota scope's snapshot policy",
                TAG,
                {204: ok("Set")},
                description=_POLICY_NOTE,
                body=obj({**target, **_POLICY_SET["properties"]}, ["volume", "every"]),
            ),
            "delete": op(
                "Clear a vfolder's or a quota scope's snapshot policy (its snapshots stay)",
                TAG,
                {204: ok("Cleared")},
                body=obj(target, ["volume"]),
            ),
        }
    }


def manager_paths() -> dict[str, Any]:
    vf = obj(_VFOLDER)
    one = obj({**_VFOLDER, "snapshot_id": _ID, **_BACKGROUND}, ["volume", "vfid", "snapshot_id"])
    return {
        "/folder/snapshot": {
            "post": op(
                "Take a snapshot (native: at once; by copies: a background task)",
                TAG,
                {
                    201: ok("Taken (by copies: the task's result, with bgtask_id)", _TASK_BY_COPY),
                    202: ok("Started (background)", _STARTED),
                },
                body=obj({**_VFOLDER, "name": nullable(_ID), **_BACKGROUND}, ["volume", "vfid"]),
            )
        },
        "/folder/snapshots": {
            "get": op(
                "A vfolder's snapshots, oldest first",
                TAG,
                {200: ok("", obj({"snapshots": array(SNAPSHOT)}))},
                body=vf,
                body_required=False,
            )
        },
        "/folder/snapshot/delete": {
            "post": op(
                "Delete a snapshot (by copies: a background task)",
                TAG,
                {204: ok("Deleted"), 202: ok("Started (background)", _STARTED)},
                body=one,
            )
        },
        "/folder/snapshot/restore": {
            "post": op(
                "Restore the whole vfolder or relpaths, in place or into a new directory "
                "(a background task; in place the vfolder is 'restoring')",
                TAG,
                {200: ok("Restored", _RESTORED), 202: ok("Started (background)", _STARTED)},
                body=obj(
                    {
                        **_VFOLDER,
                        "snapshot_id": _ID,
                        "relpaths": array(_RELPATH),
                        "into": nullable(_RELPATH),
                        **_BACKGROUND,
                    },
                    ["volume", "vfid", "snapshot_id"],
                ),
            )
        },
        **_policy_paths(),
        "/folder/snapshot/files": {
            "post": op(
                "List a directory of a snapshot (read-only)",
                TAG,
                {200: ok("", obj({"items": array(_ITEM)}))},
                body=obj(
                    {**_VFOLDER, "snapshot_id": _ID, "relpath": _RELPATH, "recursive": BOOL},
                    ["volume", "vfid", "snapshot_id"],
                ),
            )
        },
    }


def _client_policy_paths(prefix: str, vf_params: list[Any]) -> dict[str, Any]:
    return {
        prefix + "/snapshot-policy": {
            "get": op(
                "The vfolder's snapshot policy, and its quota scope's (RO)",
                TAG,
                {200: ok("", _POLICY_VIEW)},
                description=_POLICY_NOTE,
                params=vf_params,
            ),
            "put": op(
                "Set the vfolder's snapshot policy (RW)",
                TAG,
                {204: ok("Set")},
                description=_POLICY_NOTE,
                params=vf_params,
                body=_POLICY_SET,
            ),
            "delete": op(
                "Clear the vfolder's own snapshot policy (RW; its snapshots stay)",
                TAG,
                {204: ok("Cleared")},
                params=vf_params,
            ),
        },
    }


def client_paths(
    prefix: str, vf_params: list[Any], download_answers: dict[int, Any], range_header: Any
) -> dict[str, Any]:
    snap = [*vf_params, path("snapshot", "a snapshot id")]
    entry = obj({"path": STR, "size": BYTES, "modified": TIME, "type": STR})
    return {
        prefix + "/snapshots": {
            "get": op(
                "The vfolder's snapshots, oldest first (RO)",
                TAG,
                {200: ok("", obj({"snapshots": array(SNAPSHOT)}))},
                params=vf_params,
            ),
            "post": op(
                "Take a snapshot (RW); answers once it is taken",
                TAG,
                {201: ok("Taken", SNAPSHOT)},
                params=vf_params,
                body=obj({"name": _ID}, []),
                body_required=False,
            ),
        },
        prefix + "/snapshots/{snapshot}": {
            "delete": op("Delete a snapshot (RW)", TAG, {204: ok("Deleted")}, params=snap)
        },
        **_client_policy_paths(prefix, vf_params),
        prefix + "/snapshots/{snapshot}/restore": {
            "post": op(
                "Restore paths (none: the whole vfolder) in place or into a new directory (RW)",
                TAG,
                {
                    200: ok(
                        "Restored",
                        obj(
                            {
                                "snapshot_id": STR,
                                "paths": array(STR),
                                "into": nullable(STR),
                                "files": INT,
                                "bytes": BYTES,
                            }
                        ),
                    )
                },
                params=snap,
                body=obj({"paths": array(_RELPATH), "into": _RELPATH}, []),
                body_required=False,
            )
        },
        prefix + "/snapshots/{snapshot}/list": {
            "get": op(
                "A directory of a snapshot (RO, read-only)",
                TAG,
                {200: ok("", obj({"files": array(entry)}))},
                params=[
                    *snap,
                    query("path", "a directory of the snapshot (default: its root)"),
                    query("recursive", "true: everything below it"),
                ],
            )
        },
        prefix + "/snapshots/{snapshot}/files/{path}": {
            "get": op(
                "Download a file of a snapshot (RO)",
                TAG,
                download_answers,
                params=[
                    *snap,
                    path("path", "a path below the snapshot's root"),
                    query("archive", "true: a directory as zip"),
                    range_header,
                ],
            )
        },
    }


VERSION = obj(
    {
        "version_id": STR,
        "size": BYTES,
        "modified": TIME,
        "kept": {**TIME, "description": "when it stopped being the current file"},
        "sha256": nullable(STR),
        "who": nullable({**STR, "description": "whose change replaced or deleted it"}),
        "reason": {"enum": ["overwrite", "move", "delete", "restore"]},
    }
)
_FILE_META = obj(
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


def manager_version_paths() -> dict[str, Any]:
    one_file = {**_VFOLDER, "relpath": _RELPATH}
    one = obj({**one_file, "version_id": STR})
    return {
        "/folder/versions": {
            "get": op(
                "How many versions of each file the vfolder keeps (0: none)",
                TAG_VERSIONS,
                {200: ok("", obj({"versions": INT}))},
                body=obj(_VFOLDER),
                body_required=False,
            ),
            "put": op(
                "Set how many versions of each file the vfolder keeps (0: none)",
                TAG_VERSIONS,
                {204: ok("Set")},
                body=obj({**_VFOLDER, "versions": INT}),
            ),
        },
        "/folder/file/versions": {
            "post": op(
                "The kept versions of a file, newest first",
                TAG_VERSIONS,
                {200: ok("", obj({"versions": array(VERSION)}))},
                body=obj(one_file),
            )
        },
        "/folder/file/version/restore": {
            "post": op(
                "Make a version the current file (the current one becomes a version)",
                TAG_VERSIONS,
                {200: ok("Restored", _FILE_META)},
                body=one,
            )
        },
        "/folder/file/version/delete": {
            "post": op("Delete a version", TAG_VERSIONS, {204: ok("Deleted")}, body=one)
        },
    }


def client_version_paths(
    prefix: str, file_params: list[Any], download_answers: dict[int, Any], range_header: Any
) -> dict[str, Any]:
    one = [*file_params, path("version", "a version id")]
    return {
        prefix + "/versions/{path}": {
            "get": op(
                "The kept versions of a file, newest first (RO)",
                TAG_VERSIONS,
                {200: ok("", obj({"path": STR, "versions": array(VERSION)}))},
                params=file_params,
            )
        },
        prefix + "/version/{version}/{path}": {
            "get": op(
                "Download a version (RO)",
                TAG_VERSIONS,
                download_answers,
                params=[*one, range_header],
            ),
            "post": op(
                "Restore a version: it becomes the current file, the current one a version (RW)",
                TAG_VERSIONS,
                {200: ok("Restored", _FILE_META)},
                params=one,
            ),
            "delete": op("Delete a version (RWD)", TAG_VERSIONS, {204: ok("Deleted")}, params=one),
        },
    }
