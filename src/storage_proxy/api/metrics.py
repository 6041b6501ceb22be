"""The daemon's Prometheus metrics, on their own registry (no module globals).

Request metrics keep Backend.AI's names (``backendai_api_request_count``,
``backendai_api_request_duration_sec``) and labels so existing dashboards carry over.
Volume gauges are refreshed when ``/metrics`` is scraped (a statvfs each; cheap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from ..core.types import FSUsage

_LABELS = ("method", "endpoint", "operation", "status_code", "error_detail")
#: Routes whose response bodies are file data (counted as downloaded bytes).
DOWNLOAD_OPERATIONS = frozenset({"download", "get_signed"})
#: Where the problem middleware leaves the stable error code of a failed request.
ERROR_CODE = "error_code"
#: Label sets whose metric objects are remembered (routes x methods x statuses x codes).
MAX_LABEL_SETS = 10_000


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "backendai_api_request_count", "API requests answered", _LABELS, registry=r
        )
        self.duration = Histogram(
            "backendai_api_request_duration_sec",
            "API request handling time",
            _LABELS,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
            registry=r,
        )
        self._storage_gauges(r)
        self.uploaded = Counter(
            "storage_proxy_upload_bytes", "Bytes received by uploads", ["volume"], registry=r
        )
        self.downloaded = Counter(
            "storage_proxy_download_bytes", "Bytes sent by downloads", ["api"], registry=r
        )
        self.relayed = Counter(
            "storage_proxy_relayed_bytes",
            "Download bytes spliced from an object store's socket to the client's",
            registry=r,
        )
        self.broken_off = Counter(
            "storage_proxy_responses_broken_off",
            "Answers cut short by an error after their headers were sent, by error code",
            ["code"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "storage_proxy_cache_lookups",
            "Cache reads by outcome: local, redis (hits), miss, bypass (cache unavailable)",
            ["cache", "result"],
            registry=r,
        )
        self.cache_hit_ratio = Gauge(
            "storage_proxy_cache_hit_ratio",
            "Share of cache reads answered from a copy since start",
            ["cache"],
            registry=r,
        )
        self._cache_counts: dict[str, dict[str, int]] = {}
        self._children: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._client_downloaded = self.downloaded.labels("client")
        self._bgtask_metrics(r)

    def _storage_gauges(self, r: CollectorRegistry) -> None:
        """Volumes, quota scopes and snapshots, as jobs and scans last saw them."""
        self.capacity = Gauge(
            "storage_proxy_volume_capacity_bytes", "Volume capacity", ["volume"], registry=r
        )
        self.used = Gauge(
            "storage_proxy_volume_used_bytes", "Bytes used on the volume", ["volume"], registry=r
        )
        self.quota_usage = Gauge(
            "storage_proxy_quota_usage_ratio",
            "Used bytes over the limit of a quota scope, as last seen",
            ["volume", "scope"],
            registry=r,
        )
        self.snapshots = Gauge(
            "storage_proxy_snapshots",
            "Snapshots of the volume's vfolders, by origin (policy, manual), as last counted",
            ["volume", "origin"],
            registry=r,
        )
        self.snapshot_bytes = Gauge(
            "storage_proxy_snapshot_bytes",
            "Bytes the volume's snapshots hold where the storage knows, as last counted",
            ["volume"],
            registry=r,
        )

    def _bgtask_metrics(self, r: CollectorRegistry) -> None:
        self.bgtasks_finished = Counter(
            "storage_proxy_bgtasks",
            "Background tasks finished, by kind and final status",
            ["kind", "status"],
            registry=r,
        )
        self.bgtask_duration = Histogram(
            "storage_proxy_bgtask_duration_sec",
            "Background task run time, start to finish",
            ["kind"],
            buckets=(0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600),
            registry=r,
        )
        self.bgtasks_running = Gauge(
            "storage_proxy_bgtasks_running",
            "Background tasks running in this process",
            ["kind"],
            registry=r,
        )

    def record_request(
        self, request: web.Request, status: int, detail: str, seconds: float
    ) -> None:
        """Count and time one answered request (the front door calls this for every one)."""
        route = request.match_info.route
        key = (route, request.method, status, detail)
        children = self._children.get(key)
        if children is None:
            children = self._label(route, *key[1:])
        children[0].inc()
        children[1].observe(seconds)

    def _label(
        self, route: AbstractRoute, method: str, status: int, detail: str
    ) -> tuple[Any, Any]:
        """The counter and histogram of one label set, looked up once (``labels()`` takes a
        lock and builds a key on every call; a request only needs the two objects)."""
        endpoint = route.resource.canonical if route.resource is not None else "unknown"
        operation = getattr(route.handler, "__name__", "unknown")
        labels = (method, endpoint, operation, str(status), detail)
        if len(self._children) >= MAX_LABEL_SETS:
            self._children.clear()
        children = (self.requests.labels(*labels), self.duration.labels(*labels))
        self._children[(route, method, status, detail)] = children
        return children

    def count_download(self, request: web.Request, response: web.StreamResponse) -> None:
        """When a response starts: file responses know their length (range included) only
        now."""
        operation = getattr(request.match_info.route.handler, "__name__", "")
        if (
            operation in DOWNLOAD_OPERATIONS
            and request.method == "GET"
            and response.status < 300
            and response.content_length
        ):
            self._client_downloaded.inc(response.content_length)

    def cache_lookup(self, cache: str, result: str) -> None:
        self.cache_lookups.labels(cache, result).inc()
        counts = self._cache_counts.setdefault(cache, {})
        counts[result] = counts.get(result, 0) + 1
        hits = counts.get("local", 0) + counts.get("redis", 0)
        self.cache_hit_ratio.labels(cache).set(hits / sum(counts.values()))

    # Task kinds (``clone``, ``delete``, ``job:<name>``) are few, so they make fine labels.
    def bgtask_started(self, kind: str) -> None:
        self.bgtasks_running.labels(kind).inc()

    def bgtask_finished(self, kind: str, status: str, seconds: float) -> None:
        self.bgtasks_running.labels(kind).dec()
        self.bgtasks_finished.labels(kind, status).inc()
        self.bgtask_duration.labels(kind).observe(seconds)

    def record_volumes(self, usages: Mapping[str, FSUsage]) -> None:
        for name, usage in usages.items():
            self.capacity.labels(name).set(usage.capacity_bytes)
            self.used.labels(name).set(usage.used_bytes)

    def quota_ratio(self, volume: str, scope: str, ratio: float) -> None:
        self.quota_usage.labels(volume, scope).set(ratio)

    def snapshot_totals(self, volume: str, totals: Any) -> None:
        """A volume's snapshots as the snapshot-policies job counted them."""
        self.snapshots.labels(volume, "policy").set(totals.policy)
        self.snapshots.labels(volume, "manual").set(totals.manual)
        self.snapshot_bytes.labels(volume).set(totals.bytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)
