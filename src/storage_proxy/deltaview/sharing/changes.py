"""``changes``: the change data feed between two versions, for tables that record it
(``delta.enableChangeDataFeed``). A version with change-data files gives those (``cdf``);
otherwise its data-changing ``add`` and ``remove`` actions. Only files of partitions the
recipient may read, whatever their kind."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..deltalog import relative_path
from . import protocol
from .query import CAPABILITIES, base_url, file_id, headers_for
from .recipients import Recipient
from .service import SharingService, TableRef, bad

KINDS = {"add": "add", "remove": "remove", "cdc": "cdf"}


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name} must be an integer") from None
    if value < 0:
        raise bad(f"{name} must not be negative")
    return value


async def _range(request: web.Request, svc: SharingService, alias: str, latest: int) -> range:
    q = request.query
    first = _int(request, "startingVersion")
    if first is None and q.get("startingTimestamp"):
        first = await svc.version_at(alias, q["startingTimestamp"])
    if first is None:
        raise bad("startingVersion or startingTimestamp is required")
    last = _int(request, "endingVersion")
    if last is None and q.get("endingTimestamp"):
        last = await svc.version_at(alias, q["endingTimestamp"])
    last = latest if last is None else last
    if first > last or last > latest:
        raise bad(f"versions {first}..{last} are not in the table (latest {latest})")
    return range(first, last + 1)


def _line(
    kind: str, body: dict[str, Any], rel: str, url: str, expires: int, fmt: str, v: int, ts: int
) -> bytes:
    fid = file_id(rel)
    if fmt == protocol.DELTA:
        action = {**body, "path": url}
        return protocol.line(
            {
                "file": {
                    "id": fid,
                    "deltaSingleAction": {kind: action},
                    "version": v,
                    "timestamp": ts,
                    "expirationTimestamp": expires,
                }
            }
        )
    out = {
        "url": url,
        "id": fid,
        "partitionValues": body.get("partitionValues") or {},
        "size": body.get("size"),
        "timestamp": ts,
        "version": v,
        "expirationTimestamp": expires,
    }
    if body.get("stats") and kind == "add":
        out["stats"] = body["stats"]
    return protocol.line({KINDS[kind]: out})


async def changes_response(
    request: web.Request, svc: SharingService, who: Recipient, ref: TableRef
) -> web.Response:
    snap = await svc.snapshot(ref.name)
    config = protocol.metadata(snap)["configuration"]
    if str(config.get("delta.enableChangeDataFeed", "")).lower() != "true":
        raise bad("the table does not record its change data feed")
    versions = await _range(request, svc, ref.name, snap.version)
    view = await svc.rules_view(who, ref.name)
    fmt = protocol.choose_format(request.headers.get(CAPABILITIES), snap)
    lines = [protocol.protocol_line(snap, fmt), protocol.metadata_line(snap, fmt)]
    root = f"{svc.location(ref.name).bucket}/{svc.location(ref.name).prefix}"
    base = base_url(request)
    for v, actions in await svc.commits(ref.name, versions.start, versions.stop - 1):
        info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        ts = int(info.get("timestamp") or 0)
        has_cdc = any("cdc" in a for a in actions)
        for action in actions:
            ((kind, body),) = action.items() if len(action) == 1 else ((None, None),)
            if kind not in KINDS or not isinstance(body, dict) or (has_cdc != (kind == "cdc")):
                continue
            if kind != "cdc" and not body.get("dataChange", True):
                continue
            rel = relative_path(str(body.get("path", "")), root)
            values = body.get("partitionValues")
            if values is None and rel is not None:
                values = view.known.paths.get(rel)
            if rel is None or values is None or not view.allows_values(values):
                continue
            url, expires = await svc.file_url(ref.name, rel, base)
            lines.append(_line(kind, body, rel, url, expires, fmt, v, ts))
    return web.Response(
        body=b"".join(lines),
        headers=headers_for(request, snap.version, fmt),
        content_type="application/x-ndjson",
    )
