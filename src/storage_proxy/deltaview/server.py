"""The view's aiohttp application and listeners (S3 on ``port``, Prometheus on ``metricsPort``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from . import logrewrite, xml
from .auth import Authenticator
from .config import DeltaViewConfig
from .context import VIEW, Call, View
from .db import Database
from .errors import S3Error, S3ErrorCode
from .gate import Gate
from .keys import canonical_path
from .logview import LogFilter
from .metrics import ViewMetrics
from .objects import MetaCache
from .ops import HANDLERS
from .readonly import ReadOnlyStore
from .router import resolve
from .sharing import handlers as sharing_handlers
from .sharing.recipients import Recipients
from .sharing.service import SharingService
from .store import ObjectStore, S3Store
from .users import SeenUsers

log = logging.getLogger("storage_proxy.deltaview")
REQUEST_ID = web.AppKey("deltaview-request-id", str)


def _error_response(request: web.Request, err: S3Error, request_id: str) -> web.Response:
    headers = {"x-amz-request-id": request_id, **err.headers}
    if request.method == "HEAD":
        return web.Response(status=err.error.status, headers=headers)
    body = xml.error(err.error.code, err.message, request.path, request_id)
    return web.Response(
        status=err.error.status, body=body, content_type="application/xml", headers=headers
    )


async def dispatch(request: web.Request) -> web.StreamResponse:
    view = request.app[VIEW]
    rid = uuid.uuid4().hex[:16].upper()
    op_name = "Unknown"
    try:
        raw_path, _, raw_query = request.raw_path.partition("?")
        principal = await view.auth.authenticate(
            request.method, raw_path, raw_query, request.headers
        )
        view.metrics.saw(principal.access_key)
        target = resolve(request.method, canonical_path(raw_path), request.query)
        op_name = target.op.value
        call = Call(request, view, principal, target.key, rid)
        response = await HANDLERS[target.op](call)
    except S3Error as e:
        view.metrics.denied.labels(e.reason or e.error.code).inc()
        response = _error_response(request, e, rid)
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s (id %s)", request.method, request.path, rid)
        response = _error_response(request, S3Error(S3ErrorCode.INTERNAL_ERROR), rid)
    view.metrics.served.labels(op_name).inc()
    if not response.prepared:
        response.headers["x-amz-request-id"] = rid
    if request.method != "HEAD" and response.content_length:
        view.metrics.message_size(response.content_length)
    return response


async def share(request: web.Request) -> web.StreamResponse:
    """Delta Sharing requests (``/delta-sharing/…``): bearer tokens, JSON errors."""
    view = request.app[VIEW]
    assert view.sharing is not None and view.recipients is not None
    return await sharing_handlers.dispatch(request, view.sharing, view.recipients.authenticate)


def build_app(cfg: DeltaViewConfig, metrics: ViewMetrics | None = None) -> web.Application:
    """The S3 application; backend client and database open in cleanup_ctx."""
    app = web.Application(client_max_size=0)
    metrics = metrics or ViewMetrics()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        backend = await S3Store.open(cfg.s3, metrics.backend_latency)
        db = await Database.open(cfg.database_path) if cfg.database_enabled else None
        store: ObjectStore = ReadOnlyStore(backend) if cfg.read_only else backend
        auth = Authenticator(cfg, db)
        meta = MetaCache()
        gate = Gate(cfg, store, auth)
        logs = LogFilter(
            store,
            meta,
            cfg.log_mode,
            cfg.log_cache_bytes,
            metrics.log_rewrite_seconds,
            gate.snapshot,
        )
        sharing = SharingService(cfg, gate, auth, store, metrics.client_gone.inc)
        app[VIEW] = View(cfg, store, gate, auth, metrics, meta, logs, sharing, Recipients(cfg, db))
        # before listening: pyarrow's first-call cost (~0.25 s once per process) is not the
        # first caller's to pay
        await asyncio.to_thread(logrewrite.warm_up)
        try:
            yield
        finally:
            await gate.close()
            if db is not None:
                await db.close()
            await backend.aclose()
            await metrics.users.close()

    app.cleanup_ctx.append(resources)
    if cfg.sharing.enabled:
        app.router.add_route("*", sharing_handlers.PREFIX + "/{tail:.*}", share)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def metrics_for(cfg: DeltaViewConfig) -> ViewMetrics:
    """The view's metrics; with ``redisUrl`` its distinct-user count covers every node."""
    redis = aioredis.from_url(cfg.redis_url, socket_timeout=5) if cfg.redis_url else None
    return ViewMetrics(SeenUsers(redis))


async def start(
    cfg: DeltaViewConfig, metrics: ViewMetrics | None = None
) -> tuple[list[web.AppRunner], int, int | None]:
    """Start the listeners; returns the runners and the bound S3 and metrics ports."""
    metrics = metrics or metrics_for(cfg)
    runner = web.AppRunner(build_app(cfg, metrics), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    runners = [runner]
    metrics_port = None
    if cfg.metrics_port is not None:
        mrunner = web.AppRunner(metrics.app(), access_log=None)
        await mrunner.setup()
        msite = web.TCPSite(mrunner, cfg.host, cfg.metrics_port)
        await msite.start()
        metrics_port = msite._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runners.append(mrunner)
    log.info("delta view on %s:%d (metrics %s)", cfg.host, port, metrics_port)
    return runners, port, metrics_port


async def serve(cfg: DeltaViewConfig) -> None:
    """Run until cancelled (SIGINT/SIGTERM in the CLI)."""
    runners, _, _ = await start(cfg)
    try:
        await asyncio.Event().wait()
    finally:
        for r in reversed(runners):
            await r.cleanup()
