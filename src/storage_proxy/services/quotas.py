"""Quota scopes and per-vfolder limits, for every door; and alerts when usage crosses a threshold.

A volume's quota model keeps what its storage can (scope directories and, on native backends,
the limits themselves); this service is what the doors call, so the rules — a scope created on
first update, a missing scope a 404, a vfolder's limit kept in the registry and applied natively
where the storage nests quotas — live once.

Alerts: whenever a scope's or a vfolder's usage is looked at (a describe, a published upload, the
periodic usage scan), its ratio to the limit is compared with the thresholds (``[quota]
alert-thresholds``, 80 %, 95 %, 100 % by default).  Crossing one upward emits one event — on
``GET /events`` (server-sent), to the webhook (``[quota] alert-webhook``) and as an audit line —
and it is not repeated until usage has dropped below that threshold again.  A Prometheus gauge
carries the latest ratio per scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from ..core.errors import QuotaScopeNotFound
from ..core.types import QuotaConfig, QuotaScopeID, QuotaUsage, VFolderID
from ..metadata.store import MetadataStore
from ..volumes.registry import VolumeRegistry
from .audit import AuditEntry, AuditLog
from .usage import UsageService
from .vfolders import VFolderService

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (0.8, 0.95, 1.0)
EVENT_BACKLOG = 256
#: How long a crossing's claim lasts if usage is never seen to fall back (a worker that saw the
#: crossing died): after that, a worker that sees usage above the threshold announces it again.
CLAIM_TTL = 7 * 86400.0
#: Redis channel on which workers share the alerts they announce.
ALERT_EVENTS = "storage-proxy:quota-alerts"


def _claim_name(volume: str, subject: str, ident: str, threshold: float) -> str:
    return f"quota-alert:{volume}:{subject}:{ident}:{threshold:g}"


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    """Usage of a scope or vfolder crossed a threshold upward."""

    volume: str
    subject: str  # "scope" or "vfolder"
    id: str
    threshold: float
    used_bytes: int
    limit_bytes: int
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "quota-threshold",
            "volume": self.volume,
            "subject": self.subject,
            "id": self.id,
            "threshold": self.threshold,
            "used_bytes": self.used_bytes,
            "limit_bytes": self.limit_bytes,
            "ratio": round(self.used_bytes / self.limit_bytes, 4) if self.limit_bytes else None,
            "at": self.at,
        }


class Claims(Protocol):
    """Where workers and nodes agree who announces a crossing (the metadata store's leases)."""

    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool: ...

    async def release_lease(self, name: str, holder: str, keep_until: float | None) -> None: ...


def _why(e: BaseException) -> str:
    """One line for a dependency that failed an alert's side work (the store or Redis away is
    expected there, and a traceback per crossing would drown the log)."""
    return f"{type(e).__name__}: {e}"


class QuotaAlerts:
    """Threshold crossings: once per crossing, to listeners, a webhook and the audit log.

    Every worker watches usage; the one that wins a crossing's claim (a lease in the metadata
    store, shared by all workers and nodes) announces it, and gives the claim up when usage
    falls back below the threshold, so the next crossing is announced again.  Events reach the
    listeners of every worker through ``publish`` (Redis) when it is set, else this worker's.
    """

    def __init__(
        self,
        audit: AuditLog,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        webhook: str | None = None,
        gauge: Callable[[str, str, float], None] | None = None,
        *,
        claims: Claims | None = None,
        holder: str = "local",
    ) -> None:
        self.thresholds = tuple(sorted(thresholds))
        self._audit = audit
        self._webhook = webhook
        self._gauge = gauge or (lambda volume, scope, ratio: None)
        self._claims = claims
        self._holder = holder
        #: Set to fan events out to every worker (each one's ``deliver`` receives them).
        self.publish: Callable[[str], Awaitable[Any]] | None = None
        self._level: dict[tuple[str, str, str], int] = {}  # highest threshold index crossed
        self._listeners: set[asyncio.Queue[QuotaAlert]] = set()
        self._posting: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        for task in list(self._posting):
            task.cancel()
        await asyncio.gather(*self._posting, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def observe(self, volume: str, subject: str, ident: str, used: int, limit: int | None) -> None:
        """Compare usage with the thresholds; announce what was crossed upward since last time."""
        if not limit:
            return
        ratio = used / limit
        if subject == "scope":
            self._gauge(volume, ident, ratio)
        key = (volume, subject, ident)
        level = sum(1 for t in self.thresholds if ratio >= t)
        previous = self._level.get(key, 0)
        self._level[key] = level
        for index in range(previous, level):
            alert = QuotaAlert(volume, subject, ident, self.thresholds[index], used, limit)
            self._spawn(self._announce(alert))
        for index in range(level, previous):
            self._spawn(self._rearm(_claim_name(volume, subject, ident, self.thresholds[index])))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _announce(self, alert: QuotaAlert) -> None:
        name = _claim_name(alert.volume, alert.subject, alert.id, alert.threshold)
        if self._claims is not None:
            try:
                if not await self._claims.acquire_lease(name, self._holder, CLAIM_TTL, time.time()):
                    return  # another worker or node announced this crossing
            except Exception as e:  # alerts never fail a request; announce rather than lose it
                log.warning("quota alert claim failed (%s); announcing anyway", _why(e))
        log.info(
            "quota: %s %s on %s crossed %d%% (%d of %d bytes)",
            alert.subject, alert.id, alert.volume, alert.threshold * 100, alert.used_bytes,
            alert.limit_bytes,
        )  # fmt: skip
        entry = AuditEntry("quota.threshold", alert.volume, alert.id, bytes=alert.used_bytes)
        entry.extra["alert"] = alert.to_json()
        self._audit.record(entry, "alert")
        if self._webhook:
            self._spawn(self._post(alert))
        if self.publish is not None:
            try:
                await self.publish(json.dumps(alert.to_json()))
                return
            except Exception as e:  # Redis away: this worker's listeners still hear it
                log.warning("quota alert not published to other workers (%s)", _why(e))
        self._deliver(alert)

    async def _rearm(self, name: str) -> None:
        if self._claims is not None:
            with contextlib.suppress(Exception):
                await self._claims.release_lease(name, self._holder, None)

    def deliver(self, message: str) -> None:
        """An alert published by any worker (the Redis channel's handler)."""
        try:
            raw = json.loads(message)
            alert = QuotaAlert(
                raw["volume"], raw["subject"], raw["id"], float(raw["threshold"]),
                int(raw["used_bytes"]), int(raw["limit_bytes"]), float(raw["at"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            log.warning("malformed quota alert on the channel ignored")
            return
        self._deliver(alert)

    def _deliver(self, alert: QuotaAlert) -> None:
        for queue in list(self._listeners):
            if queue.full():
                queue.get_nowait()  # a slow listener loses the oldest, not the newest
            queue.put_nowait(alert)

    async def _post(self, alert: QuotaAlert) -> None:
        assert self._webhook is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for attempt in range(3):
            try:
                async with self._session.post(self._webhook, json=alert.to_json()) as resp:
                    if resp.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError) as e:
                why = type(e).__name__
                log.warning("quota alert webhook failed (%s); attempt %d", why, attempt)
            await asyncio.sleep(2**attempt)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[QuotaAlert]]:
        queue: asyncio.Queue[QuotaAlert] = asyncio.Queue(EVENT_BACKLOG)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)


class QuotaService:
    def __init__(
        self,
        volumes: VolumeRegistry,
        metadata: MetadataStore,
        vfolders: VFolderService,
        usage: UsageService,
        alerts: QuotaAlerts,
        audit: AuditLog | None = None,
    ) -> None:
        self._volumes = volumes
        self._metadata = metadata
        self._vfolders = vfolders
        self._usage = usage
        self.alerts = alerts
        self._audit = audit or AuditLog()

    # -- scopes ----------------------------------------------------------------------------------
    async def create_scope(
        self, volume: str, qsid: QuotaScopeID, config: QuotaConfig | None
    ) -> None:
        await self._volumes.get(volume).quota_model.create_quota_scope(qsid, config)

    async def describe_scope(self, volume: str, qsid: QuotaScopeID) -> QuotaUsage:
        usage = await self._volumes.get(volume).quota_model.describe_quota_scope(qsid)
        if usage is None:
            raise QuotaScopeNotFound(f"quota scope {qsid} does not exist")
        self.alerts.observe(volume, "scope", str(qsid), usage.used_bytes, usage.limit_bytes)
        return usage

    async def update_scope(self, volume: str, qsid: QuotaScopeID, config: QuotaConfig) -> None:
        """Set a scope's limit, creating the scope first if it is missing (as the reference)."""
        model = self._volumes.get(volume).quota_model
        if not await model.quota_scope_exists(qsid):
            await model.create_quota_scope(qsid, config)
        else:
            await model.update_quota_scope(qsid, config)

    async def unset_scope(self, volume: str, qsid: QuotaScopeID) -> None:
        model = self._volumes.get(volume).quota_model
        if not await model.quota_scope_exists(qsid):
            raise QuotaScopeNotFound(f"quota scope {qsid} does not exist")
        await model.unset_quota(qsid)

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[EventStream]:
        """Alerts from now on, for as long as the block runs."""
        async with self.alerts.subscribe() as queue:
            yield EventStream(queue)

    # -- vfolders --------------------------------------------------------------------------------
    async def vfolder_quota(self, volume: str, vfid: VFolderID) -> QuotaUsage:
        record = await self._vfolders.registered(volume, vfid)
        used = (await self._usage.get(volume, vfid)).used_bytes
        self.alerts.observe(volume, "vfolder", str(vfid), used, record.limit_bytes)
        return QuotaUsage(used_bytes=used, limit_bytes=record.limit_bytes)

    async def set_vfolder_quota(self, volume: str, vfid: VFolderID, limit: int | None) -> None:
        """Kept in the registry (all a proxy-enforced model needs) and applied natively where
        the storage nests quotas (CephFS realms, qtrees)."""
        await self._vfolders.registered(volume, vfid)
        async with self._audit.operation("vfolder.quota", volume, vfid) as line:
            line.extra["limit_bytes"] = limit
            await self._volumes.get(volume).set_vfolder_quota(vfid, limit)
            await self._metadata.update_vfolder(volume, str(vfid), limit_bytes=limit)

    async def observe_scopes(self, scopes: Iterable[tuple[str, QuotaScopeID]]) -> None:
        """Usage of each (volume, scope) against its limit (the periodic scan's pass)."""
        for volume, qsid in scopes:
            try:
                usage = await self._volumes.get(volume).quota_model.describe_quota_scope(qsid)
            except Exception:
                log.debug("no usage for alerts of %s", qsid, exc_info=True)
                continue
            if usage is not None:
                self.alerts.observe(volume, "scope", str(qsid), usage.used_bytes, usage.limit_bytes)

    @contextlib.asynccontextmanager
    async def copying(self, volume: str, vfid: VFolderID, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` of the vfolder's limits while the proxy copies them in (a restore of a
        snapshot or of a version): ``QuotaExceeded`` before anything is copied if they cannot
        fit, and counted as written once the copy is done.  ``nbytes`` is what the sources say
        (their apparent size): a sparse file is filled in by a copy, so it costs its length."""
        model = self._volumes.get(volume).quota_model
        async with model.reservation(vfid) as reservation:
            await reservation.reserve(nbytes)
            yield
            await reservation.consume(nbytes)

    async def observe_written(self, volume: str, vfid: VFolderID) -> None:
        """After a write: usage of the vfolder's scope against its limit (for the alerts)."""
        model = self._volumes.get(volume).quota_model
        try:
            usage = await model.usage_after_write(vfid.quota_scope_id)
        except Exception:  # alerts never fail a write
            log.debug("no usage for alerts of %s", vfid, exc_info=True)
            return
        if usage is not None:
            ident = str(vfid.quota_scope_id)
            self.alerts.observe(volume, "scope", ident, usage.used_bytes, usage.limit_bytes)


class EventStream:
    """Alerts as server-sent event frames, for one listener."""

    def __init__(self, queue: asyncio.Queue[QuotaAlert]) -> None:
        self._queue = queue

    async def next_frame(self) -> bytes:
        alert = await self._queue.get()
        return sse("quota-threshold", alert.to_json())


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
