"""Prometheus metrics of the view, on their own registry (no globals), served on metricsPort."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Summary
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .users import SeenUsers


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
    def __init__(self, users: SeenUsers | None = None) -> None:
        self.registry = CollectorRegistry()
        self.users = users or SeenUsers()
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
        self.client_gone = Counter(
            "deltaview_client_disconnects",
            "Downloads the client hung up on before the end",
            registry=r,
        )
        self._rewrite = Summary(
            "deltaview_log_rewrite_seconds",
            "Time to rewrite a log entry for a rule set",
            registry=r,
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
        self._unique_users = Gauge(
            "deltaview_unique_users_last_minute",
            "Distinct access keys seen in the last minute (on every node, with Redis)",
            registry=r,
        )

    def backend_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)
        self._lat_avg.add(seconds)

    def log_rewrite_seconds(self, seconds: float) -> None:
        self._rewrite.observe(seconds)

    def message_size(self, size: int) -> None:
        self._size.observe(size)
        self._size_avg.add(size)

    def saw(self, access_key: str | None) -> None:
        self.users.saw(access_key)

    async def render(self) -> bytes:
        self._unique_users.set(await self.users.count())
        return generate_latest(self.registry)

    def app(self) -> web.Application:
        async def handle(_req: web.Request) -> web.Response:
            return web.Response(
                body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", handle)
        app.router.add_get("/", handle)
        return app
