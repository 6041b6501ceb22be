"""Routes of the manager API that storage-proxy 26.9.6 has and this daemon's 23.09 API lacked,
in OpenAPI 3.1: the health probes (also on the internal listener), performance metrics, the
deprecated per-vfolder quota, vfolder metadata, fetch, background deletes and archive tokens."""

from __future__ import annotations

from typing import Any

from .common import ANY, BOOL, STR, TIME, array, media, nullable, obj, ok, op, ref

TAG_HEALTH, TAG_VOLUMES, TAG_FOLDERS, TAG_FILES = "health", "volumes", "vfolders", "files"
VOLUME = {"volume": {"type": "string", "description": "a configured volume name"}}
VFOLDER = {**VOLUME, "vfid": {"type": "string", "description": "<quota-scope-id>/<uuid-hex>"}}
RELPATH = {"type": "string", "description": "a path relative to the vfolder root"}
TASK_STARTED = obj({"bgtask_id": STR})
_INT, _NUM = {"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}
PERF_METRIC = obj(
    {
        "iops_read": _INT,
        "iops_write": _INT,
        "io_bytes_read": _INT,
        "io_bytes_write": _INT,
        "io_usec_read": _NUM,
        "io_usec_write": _NUM,
    }
)


def body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return obj(props, required)


CHECK = obj(
    {
        "service_group": STR,
        "component_id": STR,
        "is_healthy": BOOL,
        "last_checked_at": TIME,
        "error_message": nullable(STR),
    }
)
HEALTH = obj(
    {
        "status": {"enum": ["ok", "degraded", "error"]},
        "version": STR,
        "component": STR,
        "connectivity": obj(
            {"overall_healthy": BOOL, "connectivity_checks": array(CHECK), "timestamp": TIME}
        ),
        "down": array(STR),
    },
    ["status", "version", "component", "connectivity"],
)


def health_paths(tag: str, legacy_health: dict[str, Any]) -> dict[str, Any]:
    """``/health``, ``/livez`` and ``/readyz`` (manager and internal listeners alike)."""
    probe = {
        200: ok("Every dependency it gates on is up", ref("Health")),
        503: ok("One is down (named in connectivity_checks and down)", ref("Health")),
    }
    return {
        "/health": {
            "get": op(
                "Every dependency's state; 26.09: 200 always (degraded in the body)",
                tag,
                {200: ok("", {"oneOf": [ref("Health"), legacy_health]}), **legacy_503(tag)},
                security=[],
            )
        },
        "/livez": {"get": op("Liveness: the metadata store", tag, probe, security=[])},
        "/readyz": {"get": op("Readiness: metadata, Redis, every volume", tag, probe, security=[])},
    }


def legacy_503(tag: str) -> dict[int, Any]:
    """The internal listener's /health in the 23.09 dialect answers 503 naming what is down."""
    return {503: ok("23.09, internal listener: a dependency is down", {"type": "object"})}


def bai_paths() -> dict[str, Any]:
    return {**_volume_paths(), **_folder_paths()}


def _volume_paths() -> dict[str, Any]:
    return {
        "/volume/performance-metric": {
            "get": op(
                "Live I/O figures of a volume: per second over a short window, mean latencies in "
                "microseconds (local file systems: their block device's counters; 400 "
                "unsupported-operation where the backend cannot tell)",
                TAG_VOLUMES,
                {200: ok("", obj({"metric": PERF_METRIC, "observed_at": TIME}))},
                body=body(VOLUME),
                body_required=False,
            )
        },
        "/volume/quota": {
            "get": op(
                "Backend.AI's per-vfolder quota of old: always 400 with no body, the reason in "
                "the status line (as both Backend.AI releases answer)",
                TAG_VOLUMES,
                {},
                body=body({**VOLUME, "vfid": nullable(STR)}, ["volume"]),
                body_required=False,
            ),
            "patch": op(
                "Backend.AI's per-vfolder quota of old: always 400 with no body, the reason in "
                "the status line (as both Backend.AI releases answer)",
                TAG_VOLUMES,
                {},
                body=body({**VOLUME, "vfid": nullable(STR), "size_bytes": ANY}),
            ),
        },
    }


def _folder_paths() -> dict[str, Any]:
    vf = body(VFOLDER)
    token = obj({"token": STR})
    return {
        "/folder/metadata": {
            "get": op(
                "Backend.AI's vfolder metadata route: {status: ok} for a vfolder that exists",
                TAG_FOLDERS,
                {200: ok("", obj({"status": {"const": "ok"}}))},
                body=vf,
                body_required=False,
            ),
            "post": op(
                "Backend.AI's vfolder metadata route: payload must be bytes, which JSON cannot "
                "carry (400, as there)",
                TAG_FOLDERS,
                {200: ok("", obj({"status": {"const": "ok"}}))},
                body=body({**VFOLDER, "payload": STR}),
            ),
        },
        "/folder/file/delete-async": {
            "post": op(
                "Delete files in a background task (paths already gone count as deleted)",
                TAG_FILES,
                {202: ok("Started", TASK_STARTED)},
                body=body(
                    {**VFOLDER, "relpaths": array(RELPATH), "recursive": BOOL},
                    ["volume", "vfid", "relpaths"],
                ),
            )
        },
        "/folder/file/fetch": {
            "post": op(
                "A file's bytes (404 missing, 400 a directory, a link or a path out of the "
                "vfolder; Backend.AI answers those 200 with an empty body)",
                TAG_FILES,
                {200: media("The file", "application/octet-stream")},
                body=body({**VFOLDER, "relpath": RELPATH}),
            )
        },
        "/folder/file/archive-download-token": {
            "post": op(
                "A token for GET /download-archive on the client API: several paths, one zip",
                TAG_FILES,
                {200: ok("", token)},
                body=body(
                    {
                        **VOLUME,
                        "virtual_folder_id": VFOLDER["vfid"],
                        "files": array(RELPATH),
                        "filename": nullable(STR),
                    },
                    ["volume", "virtual_folder_id", "files"],
                ),
            )
        },
    }
