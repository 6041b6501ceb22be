"""The manager API's audit and event routes, in OpenAPI 3.1: ``GET /folder/audit`` and
``GET /events``."""

from __future__ import annotations

from typing import Any

from .common import BYTES, INT, NUM, STR, TIME, array, media, nullable, obj, ok, op

VFOLDER = {
    "volume": {"type": "string", "description": "a configured volume name"},
    "vfid": {"type": "string", "description": "<quota-scope-id>/<uuid-hex>"},
}


def audit_paths() -> dict[str, Any]:
    entry = obj(
        {
            "time": TIME,
            "request_id": nullable(STR),
            "principal": STR,
            "door": STR,
            "volume": STR,
            "vfid": STR,
            "path": nullable(STR),
            "operation": STR,
            "bytes": nullable(BYTES),
            "result": {"type": "string", "description": "ok, or the error's stable code"},
            "duration_ms": NUM,
            "labels": obj({"vfolder_id": STR, "backend": STR, "operation": STR}),
        },
        [],
    )
    return {
        "/folder/audit": {
            "get": op(
                "A vfolder's latest audit entries, newest first",
                "vfolders",
                {200: ok("", obj({"entries": array(entry)}))},
                body=obj({**VFOLDER, "limit": INT}, ["volume", "vfid"]),
                body_required=False,
            )
        },
        "/events": {
            "get": op(
                "Quota alerts as server-sent events (quota-threshold), a comment as heartbeat",
                "quota scopes",
                {200: media("An event stream", "text/event-stream")},
            )
        },
    }
