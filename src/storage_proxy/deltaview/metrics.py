"""Prometheus metrics of the view, on their own registry (no globals), served on metricsPort."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Summary
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

WINDOW = 60.0


class _Average:
    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


class ViewMetrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self._seen: dict[str, float] = {}
        r = self.registry
        self.served = Counter(
            "deltaview_queries_served", "S3 requests answered", ["operation"], registry=r
        )
        self.proxied = Counter(
            "deltaview_queries_proxied", "GETs streamed from the backend S3", registry=r
        )
        self.redirected = Counter(
            "deltaview_queries_redirected", "GETs answered with a presigned URL", registry=r
        )
        self.denied = Counter(
            "deltaview_denials", "Requests refused, by reason", ["reason"], registry=r
        )
        self._latency = Summary(
            "deltaview_backend_latency_seconds", "Backend S3 call latency", registry=r
        )
        self._size = Summary("deltaview_message_size_bytes", "Bytes in response bodies", registry=r)
        self._lat_avg, self._size_avg = _Average(), _Average()
        Gauge(
            "deltaview_backend_latency_avg_seconds", "Average backend S3 latency", registry=r
        ).set_function(self._lat_avg.value)
        Gauge(
            "deltaview_message_size_avg_bytes", "Average response body size", registry=r
        ).set_function(self._size_avg.value)
        Gauge(
            "deltaview_unique_users_last_minute",
            "Distinct access keys seen in the last minute",
            registry=r,
        ).set_function(self.unique_users)

    def backend_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)
        self._lat_avg.add(seconds)

    def message_size(self, size: int) -> None:
        self._size.observe(size)
        self._size_avg.add(size)

    def saw(self, access_key: str | None) -> None:
        if access_key:
            self._seen[access_key] = self._clock()

    def unique_users(self) -> float:
        cutoff = self._clock() - WINDOW
        for k in [k for k, t in self._seen.items() if t < cutoff]:
            del self._seen[k]
        return float(len(self._seen))

    def app(self) -> web.Application:
        async def handle(_req: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", handle)
        app.router.add_get("/", handle)
        return app
