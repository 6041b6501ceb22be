"""Rewriting Delta log entries for one rule set: pure functions, run off the event loop.

What a caller's log keeps (``logMode: filtered``):
- ``add``, ``remove`` and ``cdc`` actions whose partition values the rules allow (a ``remove``
  without partition values takes those of the path's ``add``; unknown → dropped);
- ``protocol``, ``metaData`` and ``txn`` as stored;
- ``commitInfo`` with only the keys in ``COMMIT_INFO_KEYS`` and operation parameters in
  ``OPERATION_PARAMETERS`` (predicates, ``replaceWhere`` and operation metrics quote or count
  denied data);
- nothing else: ``domainMetadata`` (row-tracking high-water marks count every row), sidecars and
  any action this view does not know (when in doubt, deny).
Checkpoints keep their schema; the rows of denied files go, and with them their statistics.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import PartitionMap

PartitionValues = Mapping[str, str | None]
Allow = Callable[[PartitionValues], bool]
PartitionOf = Callable[[str], PartitionValues | None]

KEPT = ("protocol", "metaData", "txn")
FILE_ACTIONS = ("add", "remove", "cdc")
COMMIT_INFO_KEYS = frozenset(
    {
        "timestamp",
        "inCommitTimestamp",
        "operation",
        "operationParameters",
        "readVersion",
        "isolationLevel",
        "isBlindAppend",
        "engineInfo",
        "clientVersion",
        "txnId",
    }
)
OPERATION_PARAMETERS = frozenset({"mode", "partitionBy", "name", "description"})


@dataclass(frozen=True)
class Rewritten:
    body: bytes
    rows: int = 0  # actions (checkpoint rows)
    adds: int = 0


def scrub_commit_info(info: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in info.items() if k in COMMIT_INFO_KEYS}
    params = out.get("operationParameters")
    if isinstance(params, Mapping):
        out["operationParameters"] = {k: v for k, v in params.items() if k in OPERATION_PARAMETERS}
    elif "operationParameters" in out:
        del out["operationParameters"]
    return out


def _file_allowed(kind: str, body: Mapping[str, Any], allow: Allow, part_of: PartitionOf) -> bool:
    values = body.get("partitionValues")
    if values is None and kind == "remove":
        values = part_of(str(body.get("path", "")))
    return isinstance(values, Mapping) and allow(values)


def filter_commit(data: bytes, allow: Allow, part_of: PartitionOf) -> Rewritten:
    """A JSON commit (or compacted log file) with only what the rules let through."""
    out: list[bytes] = []
    adds = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if not isinstance(action, dict) or len(action) != 1:
            continue
        ((kind, body),) = action.items()
        if kind in KEPT:
            out.append(line)
        elif kind in FILE_ACTIONS and isinstance(body, dict):
            if _file_allowed(kind, body, allow, part_of):
                out.append(line)
                adds += kind == "add"
        elif kind == "commitInfo" and isinstance(body, dict):
            scrubbed = {"commitInfo": scrub_commit_info(body)}
            out.append(json.dumps(scrubbed, separators=(",", ":")).encode())
    body_bytes = b"\n".join(out) + b"\n" if out else b""
    return Rewritten(body_bytes, len(out), adds)


def _rule_mask(values: pa.Array, rules: tuple[PartitionMap, ...]) -> pa.Array:
    """Rows whose partition-value map matches one rule (vectorised; null → no match)."""
    mask = pa.array([False] * len(values))
    for rule in rules:
        hit = pa.array([True] * len(values))
        for col, allowed in rule.items():
            found = pc.map_lookup(values, pa.scalar(col), "first")
            hit = pc.and_(hit, pc.fill_null(pc.is_in(found, value_set=pa.array(allowed)), False))
        mask = pc.or_(mask, hit)
    return mask


def _action_mask(
    table: pa.Table, kind: str, rules: tuple[PartitionMap, ...], part_of: PartitionOf
) -> pa.Array:
    """Keep a row unless it carries a ``kind`` action of a file the rules deny."""
    col = table.column(kind).combine_chunks()
    absent = pc.is_null(col)
    if "partitionValues" not in [f.name for f in col.type]:
        return absent
    values = pc.struct_field(col, "partitionValues")
    allowed = _rule_mask(values, rules)
    if kind == "remove":  # tombstones may lack partition values: use the add's
        missing = pc.and_(pc.invert(absent), pc.is_null(values))
        if pc.any(missing).as_py():
            paths = pc.struct_field(col, "path").to_pylist()
            flags = missing.to_pylist()
            extra = []
            for path, miss in zip(paths, flags, strict=True):
                pv = part_of(path) if miss and path is not None else None
                extra.append(pv is not None and _matches_any(pv, rules))
            allowed = pc.or_(allowed, pa.array(extra))
    return pc.or_(absent, allowed)


def _matches_any(values: PartitionValues, rules: tuple[PartitionMap, ...]) -> bool:
    return any(all(values.get(c) in a for c, a in r.items()) for r in rules)


def filter_checkpoint(
    data: bytes, rules: tuple[PartitionMap, ...], part_of: PartitionOf
) -> Rewritten:
    """One classic checkpoint file (or one part of a multi-part one), rewritten with pyarrow:
    the same schema, without the rows of denied files (their statistics go with them)."""
    table = pq.read_table(io.BytesIO(data))
    names = set(table.column_names)
    keep = pa.array([True] * table.num_rows)
    for kind in FILE_ACTIONS:
        if kind in names:
            keep = pc.and_(keep, _action_mask(table, kind, rules, part_of))
    for kind in names - {*FILE_ACTIONS, *KEPT, "commitInfo"}:
        keep = pc.and_(keep, pc.is_null(table.column(kind)))  # sidecars, domains: denied
    filtered = table.filter(keep)
    if "commitInfo" in names:
        filtered = filtered.set_column(
            filtered.column_names.index("commitInfo"),
            "commitInfo",
            pa.nulls(filtered.num_rows, filtered.schema.field("commitInfo").type),
        )
    buf = io.BytesIO()
    pq.write_table(filtered, buf, compression="snappy")
    adds = 0
    if "add" in names:
        adds = filtered.num_rows - pc.sum(pc.is_null(filtered.column("add"))).as_py()
    return Rewritten(buf.getvalue(), filtered.num_rows, int(adds))


def last_checkpoint(data: bytes, parts: list[Rewritten]) -> Rewritten:
    """``_last_checkpoint`` describing the rewritten checkpoint (sizes and counts recomputed;
    the checksum and anything else that describes the stored one dropped)."""
    stored = json.loads(data)
    out: dict[str, Any] = {
        "version": stored["version"],
        "size": sum(p.rows for p in parts),
        "sizeInBytes": sum(len(p.body) for p in parts),
        "numOfAddFiles": sum(p.adds for p in parts),
    }
    if stored.get("parts"):
        out["parts"] = stored["parts"]
    return Rewritten(json.dumps(out, separators=(",", ":")).encode())


def warm_up() -> None:
    """Run one tiny checkpoint rewrite: pyarrow's first compute and parquet-writer calls cost
    ~0.25 s once per process, which a caller's first request should not pay."""
    pv = pa.array([[("k", "v")]], type=pa.map_(pa.string(), pa.string()))
    add = pa.StructArray.from_arrays([pa.array(["p"]), pv], names=["path", "partitionValues"])
    buf = io.BytesIO()
    pq.write_table(pa.table({"add": add}), buf)
    filter_checkpoint(buf.getvalue(), ({"k": ("v",)},), lambda _p: None)
