"""Our own reader of the Delta log: JSON commits and classic (single or multi-part) checkpoints.

Why not the ``deltalake`` package: the gate needs remove, cdc and deletion-vector actions that its
Python API does not expose, refreshes must read only the commits after the cached version (one
LIST with start-after, then the new JSON files), and all I/O goes through the view's own async
store with its credentials. pyarrow reads checkpoint parquet; checkpoints and large commits are
parsed in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq

from .config import TableLocation
from .store import ListedObject, ObjectStore

LOG = "_delta_log/"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}

PartitionValues = dict[str, str | None]
INLINE_BYTES = 256 * 1024  # larger commits are parsed off the event loop


class LogError(Exception):
    """The log cannot be read consistently; the gate denies data files."""


@dataclass
class FileEntry:
    partition_values: PartitionValues
    size: int | None
    dv_path: str | None = None
    stats: str | None = None
    modification_time: int = 0
    deletion_vector: dict[str, Any] | None = None
    path: str = ""  # as the log names it (relative and URL-encoded, or absolute)


@dataclass
class Snapshot:
    version: int = -1
    files: dict[str, FileEntry] = field(default_factory=dict)
    cdc: dict[str, PartitionValues] = field(default_factory=dict)
    dv_owner: dict[str, str] = field(default_factory=dict)
    partition_columns: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    checkpoint: int = -1  # the checkpoint this snapshot was loaded from (-1: none)

    def copy(self) -> Snapshot:
        return Snapshot(
            self.version,
            dict(self.files),
            dict(self.cdc),
            dict(self.dv_owner),
            self.partition_columns,
            self.metadata,
            self.protocol,
            self.checkpoint,
        )


@dataclass
class Known:
    """Every data, deletion-vector and change-data path any version named, with its partition
    values (append-only, shared by the snapshots of one table): time travel reads them."""

    paths: dict[str, PartitionValues] = field(default_factory=dict)
    complete: bool = False  # the commits before the first loaded checkpoint were read too


def z85_decode(text: str) -> bytes:
    if len(text) % 5:
        raise ValueError("z85 length must be a multiple of 5")
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for ch in text[i : i + 5]:
            value = value * 85 + _Z85_INDEX[ch]
        out += value.to_bytes(4, "big")
    return bytes(out)


def dv_relative_path(dv: dict[str, Any] | None, table_root: str) -> str | None:
    """The table-relative path of a deletion vector file (``u`` and ``p`` storage types)."""
    if not dv:
        return None
    kind, where = dv.get("storageType"), dv.get("pathOrInlineDv") or ""
    if kind == "u" and len(where) >= 20:
        prefix, encoded = where[:-20], where[-20:]
        name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(encoded))}.bin"
        return f"{prefix}/{name}" if prefix else name
    if kind == "p":
        return _relative(where, table_root)
    return None  # inline DVs have no file


def _relative(path: str, table_root: str) -> str | None:
    """A log path (relative and URL-encoded, or an absolute URI) → table-relative, decoded."""
    if "://" in path:
        u = urlparse(path)
        full = f"{u.netloc}/{unquote(u.path.lstrip('/'))}"
        return full[len(table_root) :] if full.startswith(table_root) else None
    rel = unquote(path)
    if rel.startswith("/") or any(p in ("..", ".") for p in rel.split("/")):
        return None
    return rel


def relative_path(path: str, table_root: str) -> str | None:
    """A path as an action names it → table-relative and decoded (None: outside the table)."""
    return _relative(path, table_root)


class LogReader:
    def __init__(self, store: ObjectStore, loc: TableLocation) -> None:
        self._store = store
        self._loc = loc
        self._root = f"{loc.bucket}/{loc.prefix}"
        self.known = Known()

    async def _list_objects(self, start_after: str | None) -> list[ListedObject]:
        objs: list[ListedObject] = []
        token: str | None = None
        prefix = self._loc.prefix + LOG
        while True:
            page = await self._store.list_page(
                self._loc.bucket, prefix, prefix + start_after if start_after else None, token, 1000
            )
            objs += page.objects
            token = page.next_token
            if not token:
                return objs

    async def _list_log(self, start_after: str | None) -> list[str]:
        cut = len(self._loc.prefix + LOG)
        return [o.key[cut:] for o in await self._list_objects(start_after)]

    async def commit_times(self) -> list[tuple[int, datetime]]:
        """Each commit's version and the time its file was written."""
        cut = len(self._loc.prefix + LOG)
        return [
            (int(m.group(1)), o.last_modified)
            for o in await self._list_objects(None)
            if (m := _COMMIT.match(o.key[cut:]))
        ]

    async def _read(self, name: str) -> bytes:
        data = await self._store.get_bytes(self._loc.bucket, self._loc.prefix + LOG + name)
        if data is None:
            raise LogError(f"log entry {name} vanished")
        return data

    async def load(self, as_of: int | None = None) -> Snapshot:
        """The newest snapshot (or the one of version ``as_of``): the newest complete checkpoint
        at or before it, then the commits after it."""
        names = await self._list_log(None)
        commits = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
        if as_of is not None:
            commits = [v for v in commits if v <= as_of]
        checkpoints: dict[int, list[str]] = {}
        for n in names:
            if m := _CHECKPOINT.match(n):
                checkpoints.setdefault(int(m.group(1)), []).append(n)
        snap = Snapshot()
        complete = [
            v
            for v, parts in checkpoints.items()
            if (as_of is None or v <= as_of)
            and (
                len(parts) == 1
                and ".checkpoint.parquet" in parts[0]
                or len(parts) > 1
                and len(parts) == int(_CHECKPOINT.match(parts[0]).group(3))  # type: ignore[union-attr]
            )
        ]
        if complete:
            cp = max(complete)
            for part in sorted(checkpoints[cp]):
                data = await self._read(part)
                await asyncio.to_thread(self._apply_checkpoint, snap, data)
            snap.version = snap.checkpoint = cp
        if not commits and snap.version < 0:
            raise LogError("no Delta log")
        if as_of is not None and max([snap.version, *commits]) != as_of:
            raise LogError(f"version {as_of} is not in the log")
        await self._apply_commits(snap, [v for v in commits if v > snap.version])
        if snap.checkpoint < 0:
            self.known.complete = True
        return snap

    async def backfill(self, before: int) -> None:
        """Read the commits before version ``before`` (those a checkpoint summed up) for the
        paths they named, so that time travel to them is authorized; once per table."""
        if self.known.complete:
            return
        names = await self._list_log(None)
        old = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
        scratch = Snapshot()
        for v in (v for v in old if v <= before):
            await self._apply_data(scratch, await self._read(f"{v:020d}.json"))
        self.known.complete = True

    async def read_commit(self, version: int) -> list[dict[str, Any]]:
        """The actions of one commit (for the sharing server's change feed)."""
        data = await self._read(f"{version:020d}.json")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    async def commit_versions(self) -> list[int]:
        names = await self._list_log(None)
        return sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))

    async def refresh(self, snap: Snapshot) -> Snapshot | None:
        """Commits after ``snap.version`` (one LIST with start-after); None when nothing new."""
        names = await self._list_log(f"{snap.version:020d}.json")
        newer = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
        newer = [v for v in newer if v > snap.version]
        if not newer:
            return None
        if newer[0] != snap.version + 1:
            return await self.load()  # log cleaned up past our version: start again
        nxt = snap.copy()
        await self._apply_commits(nxt, newer)
        return nxt

    async def _apply_commits(self, snap: Snapshot, versions: list[int]) -> None:
        for v in versions:
            if v != snap.version + 1:
                raise LogError(f"missing commit {snap.version + 1}")
            await self._apply_data(snap, await self._read(f"{v:020d}.json"))
            snap.version = v

    async def _apply_data(self, snap: Snapshot, data: bytes) -> None:
        """Apply one commit's actions; a large commit is parsed in a worker thread (the snapshot
        is not published yet, and ``known`` only ever gains entries)."""
        if len(data) > INLINE_BYTES:
            await asyncio.to_thread(self._apply_lines, snap, data)
        else:
            self._apply_lines(snap, data)

    def _apply_lines(self, snap: Snapshot, data: bytes) -> None:
        for line in data.splitlines():
            if line.strip():
                self._apply(snap, json.loads(line))

    def _apply(self, snap: Snapshot, action: dict[str, Any]) -> None:
        known = self.known.paths
        if add := action.get("add"):
            rel = _relative(add["path"], self._root)
            if rel is None:
                return
            self._drop(snap, rel)
            entry = FileEntry(
                dict(add.get("partitionValues") or {}),
                add.get("size"),
                dv_relative_path(add.get("deletionVector"), self._root),
                add.get("stats"),
                int(add.get("modificationTime") or 0),
                add.get("deletionVector"),
                add["path"],
            )
            snap.files[rel] = entry
            known[rel] = entry.partition_values
            if entry.dv_path:
                snap.dv_owner[entry.dv_path] = rel
                known[entry.dv_path] = entry.partition_values
        elif rm := action.get("remove"):
            rel = _relative(rm["path"], self._root)
            if rel is not None:
                self._drop(snap, rel)
                if rel not in known and rm.get("partitionValues") is not None:
                    known[rel] = dict(rm["partitionValues"])
        elif cdc := action.get("cdc"):
            rel = _relative(cdc["path"], self._root)
            if rel is not None:
                snap.cdc[rel] = known[rel] = dict(cdc.get("partitionValues") or {})
        elif meta := action.get("metaData"):
            snap.partition_columns = tuple(meta.get("partitionColumns") or ())
            snap.metadata = meta
        elif proto := action.get("protocol"):
            snap.protocol = proto

    @staticmethod
    def _drop(snap: Snapshot, rel: str) -> None:
        old = snap.files.pop(rel, None)
        if old and old.dv_path:
            snap.dv_owner.pop(old.dv_path, None)

    def _apply_checkpoint(self, snap: Snapshot, data: bytes) -> None:
        pf = pq.ParquetFile(io.BytesIO(data))
        cols = [c for c in ("add", "metaData", "protocol") if c in pf.schema_arrow.names]
        table = pf.read(columns=cols)
        for kind in ("metaData", "protocol"):
            if kind in cols:
                for value in table.column(kind).to_pylist():
                    if value:
                        self._apply(snap, {kind: value})
        if "add" in cols:
            for add in table.column("add").to_pylist():
                if add:
                    pv = add.get("partitionValues")
                    if isinstance(pv, list):  # parquet maps come back as (key, value) pairs
                        add["partitionValues"] = dict(pv)
                    self._apply(snap, {"add": add})
