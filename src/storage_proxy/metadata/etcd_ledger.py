"""The quota ledger and quota-checked upload sessions for :class:`EtcdMetadataStore`.

Why one document per volume: a reservation must see every other holding of its buckets at one
moment and add its own only if they still fit — across nodes.  The volume's ledger lives in one
key (``ledger/<vol>``: holdings in flight and recent writes, each with its buckets); a change is
a read followed by a transaction guarded by that key's revision, retried on a race.  Creating or
growing an upload session touches the same key in the same transaction, so sessions and
reservations are checked against each other too.  Old entries are pruned as they expire, which
keeps the document small (it holds what is in flight, not history).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..core.errors import AlreadyExists, BackendUnavailable
from ..core.records import QuotaBucket, Shortfall, UploadSession
from ..infra.etcd import Entry, EtcdClient, join, unquote_part

_ATTEMPTS = 50
Ledger = dict[str, dict[str, Any]]  # entry id → {"kind", "buckets", "bytes", "holder", "at", "exp"}


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _held(
    ledger: Ledger, sessions: Sequence[UploadSession], bucket: QuotaBucket, now: float
) -> int:
    total = 0
    for e in ledger.values():
        if bucket.key not in e["buckets"]:
            continue
        live = e["exp"] > now if e["kind"] == "held" else e["at"] >= bucket.scanned_at
        total += e["bytes"] if live else 0
    for s in sessions:
        if s.vfid.startswith(bucket.upload_prefix):
            total += s.length if s.length is not None else s.offset
    return total


def _shortfall(
    ledger: Ledger,
    sessions: Sequence[UploadSession],
    buckets: Sequence[QuotaBucket],
    nbytes: int,
    now: float,
) -> Shortfall | None:
    for b in buckets:
        remaining = max(0, b.limit - b.used - _held(ledger, sessions, b, now))
        if nbytes > remaining:
            return Shortfall(b.key, remaining)
    return None


class EtcdLedgerMixin:
    client: EtcdClient
    prefix: str

    if TYPE_CHECKING:  # provided by the store this mixin is part of

        def _k(self, kind: str, *parts: str, dir: bool = False) -> str: ...

        async def list_uploads(
            self, *, volume: str | None = None, expired_before: float | None = None
        ) -> list[UploadSession]: ...

    def _ledger_key(self, volume: str) -> str:
        return f"{self.prefix}ledger/{join(volume)}"

    async def _read_ledger(self, volume: str) -> tuple[Entry | None, Ledger]:
        entry = await self.client.get(self._ledger_key(volume))
        return entry, ({} if entry is None else json.loads(entry.value))

    async def _change_ledger(
        self,
        volume: str,
        change: Callable[[Ledger, list[UploadSession]], tuple[Any, list[Any]] | None],
        *,
        with_sessions: bool = False,
        absent: bytes | None = None,
    ) -> Any:
        """Apply ``change(ledger, sessions)`` → ``(result, extra ops)`` or None (nothing to do)
        atomically: retried while another node changed the ledger in between."""
        c, tx = self.client, self.client.tx
        key = c.abs(self._ledger_key(volume))
        for _ in range(_ATTEMPTS):
            entry, ledger = await self._read_ledger(volume)
            sessions = await self.list_uploads(volume=volume) if with_sessions else []
            outcome = change(ledger, sessions)
            if outcome is None:
                return None
            result, ops = outcome
            guard = tx.create(key) == 0 if entry is None else tx.mod(key) == entry.mod_revision
            guards = [guard] if absent is None else [guard, tx.create(absent) == 0]
            if await c.txn(guards, [tx.put(key, _dump(ledger)), *ops]):
                return result
            if absent is not None and await c.get(c.rel(absent)) is not None:
                raise AlreadyExists(f"{c.rel(absent)} already exists")
        raise BackendUnavailable("the quota ledger in etcd is too contended; retry")

    # -- sessions checked against the ledger ---------------------------------------------------
    async def create_upload(
        self, session: UploadSession, buckets: Sequence[QuotaBucket] = (), now: float = 0.0
    ) -> Shortfall | None:
        c, tx = self.client, self.client.tx
        key = c.abs(self._k("upload", session.id))

        def change(ledger: Ledger, sessions: list[UploadSession]) -> tuple[Any, list[Any]]:
            short = _shortfall(ledger, sessions, buckets, session.length or 0, now)
            if short is not None:
                return short, []
            return None, [tx.put(key, _dump(asdict(session)))]

        if await c.get(self._k("upload", session.id)) is not None:
            raise AlreadyExists(f"upload session {session.id} already exists")
        result: Shortfall | None = await self._change_ledger(
            session.volume, change, with_sessions=True, absent=key
        )
        return result

    async def update_upload(
        self,
        upload_id: str,
        *,
        offset: int,
        length: int | None,
        buckets: Sequence[QuotaBucket] = (),
        now: float = 0.0,
    ) -> Shortfall | None:
        c, tx = self.client, self.client.tx
        key = self._k("upload", upload_id)
        current = await c.get(key)
        if current is None:
            return None
        session = UploadSession(**json.loads(current.value))
        updated = {**asdict(session), "offset": offset, "length": length}

        def change(ledger: Ledger, sessions: list[UploadSession]) -> tuple[Any, list[Any]]:
            if buckets and length is not None:
                held = session.length if session.length is not None else session.offset
                short = _shortfall(ledger, sessions, buckets, length - held, now)
                if short is not None:
                    return short, []
            return None, [tx.put(c.abs(key), _dump(updated))]

        result: Shortfall | None = await self._change_ledger(
            session.volume, change, with_sessions=bool(buckets)
        )
        return result

    async def reserved_upload_bytes(self, volume: str, vfid_prefix: str) -> int:
        # Same rule as SQLite: the declared length, or what is staged while it is deferred.
        return sum(
            s.length if s.length is not None else s.offset
            for s in await self.list_uploads(volume=volume)
            if s.vfid.startswith(vfid_prefix)
        )

    # -- the ledger ------------------------------------------------------------------------------
    async def bucket_held(self, volume: str, bucket: QuotaBucket, now: float) -> int:
        _, ledger = await self._read_ledger(volume)
        return _held(ledger, await self.list_uploads(volume=volume), bucket, now)

    async def reserve(
        self,
        volume: str,
        buckets: Sequence[QuotaBucket],
        holding: str,
        nbytes: int,
        holder: str,
        now: float,
        ttl: float,
    ) -> Shortfall | None:
        def change(ledger: Ledger, sessions: list[UploadSession]) -> tuple[Any, list[Any]]:
            short = _shortfall(ledger, sessions, buckets, nbytes, now)
            if short is not None:
                return short, []
            entry = ledger.setdefault(
                holding,
                {"kind": "held", "buckets": [b.key for b in buckets], "bytes": 0, "holder": holder},
            )
            entry.update(bytes=entry["bytes"] + nbytes, at=now, exp=now + ttl)
            return None, []

        result: Shortfall | None = await self._change_ledger(volume, change, with_sessions=True)
        return result

    async def settle(self, volume: str, holding: str, written: int, now: float) -> None:
        def change(ledger: Ledger, _: list[UploadSession]) -> tuple[Any, list[Any]] | None:
            entry = ledger.pop(holding, None)
            if entry is None:
                return None
            if written > 0:
                ledger[holding] = {**entry, "kind": "written", "bytes": written, "at": now}
            return None, []

        await self._change_ledger(volume, change)

    async def record_written(
        self, volume: str, keys: Sequence[str], nbytes: int, now: float
    ) -> None:
        if nbytes <= 0 or not keys:
            return

        def change(ledger: Ledger, _: list[UploadSession]) -> tuple[Any, list[Any]]:
            ledger[uuid.uuid4().hex] = {
                "kind": "written",
                "buckets": list(keys),
                "bytes": nbytes,
                "holder": "",
                "at": now,
                "exp": now,
            }
            return None, []

        await self._change_ledger(volume, change)

    async def _ledger_volumes(self) -> list[str]:
        found = await self.client.get_prefix(f"{self.prefix}ledger/")
        return [unquote_part(e.key.rsplit("/", 1)[-1]) for e in found]

    async def renew_holdings(self, holder: str, now: float, ttl: float) -> None:
        def change(ledger: Ledger, _: list[UploadSession]) -> tuple[Any, list[Any]] | None:
            mine = [e for e in ledger.values() if e["kind"] == "held" and e["holder"] == holder]
            for e in mine:
                e["exp"] = now + ttl
            return (None, []) if mine else None

        for volume in await self._ledger_volumes():
            await self._change_ledger(volume, change)

    async def ledger_holders(self, prefix: str) -> list[str]:
        found: set[str] = set()
        for volume in await self._ledger_volumes():
            _, ledger = await self._read_ledger(volume)
            found.update(
                e["holder"]
                for e in ledger.values()
                if e["kind"] == "held" and e["holder"].startswith(prefix)
            )
        return sorted(found)

    async def drop_holdings(self, holder: str) -> int:
        dropped = 0

        def change(ledger: Ledger, _: list[UploadSession]) -> tuple[Any, list[Any]] | None:
            nonlocal dropped
            gone = [k for k, e in ledger.items() if e["kind"] == "held" and e["holder"] == holder]
            for k in gone:
                del ledger[k]
            dropped += len(gone)
            return (None, []) if gone else None

        for volume in await self._ledger_volumes():
            await self._change_ledger(volume, change)
        return dropped

    async def prune_ledger(self, written_before: float, now: float) -> int:
        removed = 0

        def change(ledger: Ledger, _: list[UploadSession]) -> tuple[Any, list[Any]] | None:
            nonlocal removed
            old = [
                k
                for k, e in ledger.items()
                if (e["kind"] == "held" and e["exp"] <= now)
                or (e["kind"] == "written" and e["at"] < written_before)
            ]
            for k in old:
                del ledger[k]
            removed += len(old)
            return (None, []) if old else None

        for volume in await self._ledger_volumes():
            await self._change_ledger(volume, change)
        return removed
