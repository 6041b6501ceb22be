"""``metadata`` and ``query``: a table's snapshot, and the files of it the recipient may read."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..deltalog import Snapshot
from . import protocol
from .recipients import Recipient
from .service import SharingService, TableRef, bad

CAPABILITIES = "delta-sharing-capabilities"


@dataclass(frozen=True)
class QueryArgs:
    json_predicate: dict[str, Any] | None = None
    limit: int | None = None
    version: int | None = None
    timestamp: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> QueryArgs:
        hints = body.get("jsonPredicateHints")
        predicate = None
        if isinstance(hints, str) and hints:
            try:
                predicate = json.loads(hints)
            except ValueError:
                predicate = None  # a hint the server cannot read is ignored, as the spec allows
        limit, version = body.get("limitHint"), body.get("version")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise bad("limitHint must be a non-negative integer")
        if version is not None and (not isinstance(version, int) or version < 0):
            raise bad("version must be a non-negative integer")
        timestamp = body.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, str):
            raise bad("timestamp must be a string")
        if version is not None and timestamp is not None:
            raise bad("version and timestamp cannot both be given")
        if body.get("startingVersion") is not None:
            raise bad("startingVersion queries are not supported; use the changes endpoint")
        return cls(predicate if isinstance(predicate, dict) else None, limit, version, timestamp)


def headers_for(request: web.Request, version: int, fmt: str) -> dict[str, str]:
    out = {"delta-table-version": str(version)}
    if CAPABILITIES in request.headers:
        out[CAPABILITIES] = f"responseformat={fmt}"
    return out


def metadata_response(request: web.Request, snap: Snapshot) -> web.Response:
    fmt = protocol.choose_format(request.headers.get(CAPABILITIES), snap)
    body = protocol.protocol_line(snap, fmt) + protocol.metadata_line(snap, fmt)
    return web.Response(
        body=body,
        headers=headers_for(request, snap.version, fmt),
        content_type="application/x-ndjson",
    )


def file_id(rel: str) -> str:
    return hashlib.md5(rel.encode()).hexdigest()


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def files_response(
    request: web.Request, svc: SharingService, who: Recipient, ref: TableRef, args: QueryArgs
) -> web.StreamResponse:
    snap = await svc.snapshot(ref.name, args.version, args.timestamp)
    view = await svc.rules_view(who, ref.name)
    fmt = protocol.choose_format(request.headers.get(CAPABILITIES), snap)
    if fmt == protocol.PARQUET and int(snap.protocol.get("minReaderVersion") or 1) > 1:
        raise bad("this table needs responseformat=delta")
    response = web.StreamResponse(headers=headers_for(request, snap.version, fmt))
    response.content_type = "application/x-ndjson"
    await response.prepare(request)
    await response.write(protocol.protocol_line(snap, fmt) + protocol.metadata_line(snap, fmt))
    columns = set(snap.partition_columns)
    covered, batch, base = 0, [], base_url(request)
    for rel, entry in svc.allowed_files(snap, view):  # the gate: never a hint
        if args.json_predicate and not protocol.keeps(
            args.json_predicate, entry.partition_values, columns
        ):
            continue
        url, expires = await svc.file_url(ref.name, rel, base)
        batch.append(protocol.file_line(entry, file_id(rel), url, expires, fmt, {}))
        if len(batch) >= 1000:
            await response.write(b"".join(batch))
            batch = []
            await asyncio.sleep(0)  # let other requests in between batches
        if args.limit is not None:
            records = protocol.num_records(entry)
            covered = covered + records if records is not None and covered >= 0 else -1
            if covered >= args.limit:
                break
    await response.write(b"".join(batch))
    await response.write_eof()
    return response
