"""Delta Sharing response lines (``responseformat=parquet`` and ``delta``) and the hints a query
may carry. Hints only ever drop files the partition gate already allowed: ``jsonPredicateHints``
is evaluated on partition values (anything it cannot decide keeps the file), ``limitHint`` stops
once the files' ``numRecords`` cover it. The gate itself is never a hint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..deltalog import FileEntry, Snapshot

PARQUET, DELTA = "parquet", "delta"
_COMPARE = {
    "equal": lambda a, b: a == b,
    "lessThan": lambda a, b: a < b,
    "lessThanOrEqual": lambda a, b: a <= b,
    "greaterThan": lambda a, b: a > b,
    "greaterThanOrEqual": lambda a, b: a >= b,
}


def line(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _plain_map(value: Any) -> dict[str, Any]:
    """A map as JSON (checkpoints hand maps back as key/value pairs)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return {k: v for k, v in value}
    return {}


def metadata(snap: Snapshot) -> dict[str, Any]:
    meta = dict(snap.metadata)
    fmt = dict(meta.get("format") or {"provider": "parquet"})
    fmt["options"] = _plain_map(fmt.get("options"))
    out = {
        "id": meta.get("id"),
        "format": fmt,
        "schemaString": meta.get("schemaString"),
        "partitionColumns": list(meta.get("partitionColumns") or []),
        "configuration": _plain_map(meta.get("configuration")),
    }
    if meta.get("name"):
        out["name"] = meta["name"]
    if meta.get("createdTime") is not None:
        out["createdTime"] = meta["createdTime"]
    return out


def protocol_line(snap: Snapshot, fmt: str) -> bytes:
    proto = {k: v for k, v in snap.protocol.items() if v is not None} or {"minReaderVersion": 1}
    if fmt == DELTA:
        return line({"protocol": {"deltaProtocol": proto}})
    return line({"protocol": {"minReaderVersion": int(proto.get("minReaderVersion", 1))}})


def metadata_line(snap: Snapshot, fmt: str, version: int | None = None) -> bytes:
    meta = metadata(snap)
    if fmt == DELTA:
        body: dict[str, Any] = {"deltaMetadata": meta}
        if version is not None:
            body["version"] = version
        return line({"metaData": body})
    if version is not None:
        meta["version"] = version
    return line({"metaData": meta})


def file_line(
    entry: FileEntry, file_id: str, url: str, expires_ms: int, fmt: str, extra: dict[str, Any]
) -> bytes:
    """One ``file`` (query) line; ``extra`` carries version/timestamp where they apply."""
    if fmt == DELTA:
        add: dict[str, Any] = {
            "path": url,
            "partitionValues": entry.partition_values,
            "size": entry.size,
            "modificationTime": entry.modification_time,
            "dataChange": True,
        }
        if entry.stats:
            add["stats"] = entry.stats
        if entry.deletion_vector:
            add["deletionVector"] = entry.deletion_vector
        body = {"id": file_id, "deltaSingleAction": {"add": add}}
        return line({"file": {**body, "expirationTimestamp": expires_ms, **extra}})
    out: dict[str, Any] = {
        "url": url,
        "id": file_id,
        "partitionValues": entry.partition_values,
        "size": entry.size,
        "expirationTimestamp": expires_ms,
        **extra,
    }
    if entry.stats:
        out["stats"] = entry.stats
    return line({"file": out})


def choose_format(capabilities: str | None, snap: Snapshot) -> str:
    """The client's ``delta-sharing-capabilities``: parquet when it takes it and the table
    needs nothing parquet cannot say (reader version 1), delta otherwise."""
    formats: list[str] = []
    for part in (capabilities or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "responseformat":
            formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    needs_delta = int(snap.protocol.get("minReaderVersion") or 1) > 1
    if not formats:
        return DELTA if needs_delta else PARQUET
    if PARQUET in formats and not needs_delta:
        return PARQUET
    return DELTA if DELTA in formats else PARQUET


def _value(node: Mapping[str, Any], values: Mapping[str, str | None]) -> Any:
    if node.get("op") == "column":
        raw = values.get(str(node.get("name")))
    elif node.get("op") == "literal":
        raw = node.get("value")
    else:
        raise ValueError("not a leaf")
    kind = node.get("valueType", "string")
    if raw is None:
        return None
    if kind in ("int", "long"):
        return int(raw)
    if kind in ("float", "double"):
        return float(raw)
    if kind == "boolean":
        return str(raw).lower() == "true"
    return str(raw)


def keeps(node: Any, values: Mapping[str, str | None], columns: set[str]) -> bool:
    """False only when the predicate is certainly false for these partition values."""
    try:
        return _eval(node, values, columns) is not False
    except (ValueError, TypeError, KeyError, AttributeError):
        return True


def _eval(node: Mapping[str, Any], values: Mapping[str, str | None], cols: set[str]) -> Any:
    op = node.get("op")
    kids = node.get("children") or []
    if op == "and":
        got = [_eval(k, values, cols) for k in kids]
        return False if False in got else (None if None in got else True)
    if op == "or":
        got = [_eval(k, values, cols) for k in kids]
        return True if True in got else (None if None in got else False)
    if op == "not":
        inner = _eval(kids[0], values, cols)
        return None if inner is None else not inner
    names = {k.get("name") for k in kids if k.get("op") == "column"}
    if not names or not names <= cols:
        return None  # a data column: the partition values cannot decide it
    if op == "isNull":
        return _value(kids[0], values) is None
    if op in _COMPARE and len(kids) == 2:
        a, b = _value(kids[0], values), _value(kids[1], values)
        return None if a is None or b is None else _COMPARE[op](a, b)
    return None


def num_records(entry: FileEntry) -> int | None:
    try:
        return int(json.loads(entry.stats or "{}")["numRecords"])
    except (ValueError, KeyError, TypeError):
        return None
