"""Running the daemon: build the root context, start one listener per API, stop cleanly.

On SIGTERM/SIGINT the listeners stop accepting, in-flight requests get ``shutdown-timeout`` to
finish, then the context (volumes, scanner, metadata store) is closed in reverse order and any task
still alive is cancelled and reported, so nothing is orphaned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import eventloop, runtime
from .api.client import create_client_app
from .api.client.fastlane import FastLane, LaneSite, lane_fits
from .api.inflight import InflightRequests
from .api.internal import create_internal_app
from .api.keys import SERVICES
from .api.manager import create_manager_app
from .api.problem import RequestLogger
from .context import RootContext, build_root_context
from .volumes.sync import apply_volume_changes

log = logging.getLogger(__name__)

DEFAULT_INTERNAL_ADDR = {"host": "127.0.0.1", "port": 6023}
#: After the drain, how long aiohttp may still wait for a handler before cancelling it.
CLEANUP_TIMEOUT = 1.0


def _ssl_context(listener: dict[str, Any]) -> ssl.SSLContext | None:
    if not listener["ssl-enabled"]:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(listener["ssl-cert"], listener["ssl-privkey"])
    return ctx


async def _start_listener(
    app: web.Application,
    listener: dict[str, Any],
    shutdown_timeout: float,
    what: str,
    inflight: InflightRequests,
    reuse_port: bool = False,
    keepalive_timeout: float = 75.0,
) -> web.AppRunner:
    app.middlewares.insert(0, inflight.middleware)
    runner = web.AppRunner(
        app,
        access_log_class=RequestLogger,
        access_log=logging.getLogger(f"storage_proxy.access.{what}"),
        # the daemon's own drain already waited for in-flight requests: cut stragglers quickly
        shutdown_timeout=min(shutdown_timeout, CLEANUP_TIMEOUT),
        keepalive_timeout=keepalive_timeout,
        handle_signals=False,
    )
    await runner.setup()
    addr = listener["service-addr"]
    where = (runner, addr["host"] or None, addr["port"])
    options: dict[str, Any] = {
        "ssl_context": _ssl_context(listener),
        "reuse_port": reuse_port or None,
    }
    services = app.get(SERVICES)
    site: web.TCPSite
    if what == "client" and services is not None and services.settings.fast_lane:
        if lane_fits():
            site = LaneSite(*where, lane=FastLane(services, inflight), **options)
        else:
            log.warning("this aiohttp differs from the one the fast lane knows: it is off")
            site = web.TCPSite(*where, **options)
    else:
        site = web.TCPSite(*where, **options)
    await site.start()
    log.info("%s API listening on %s:%s", what, addr["host"], addr["port"])
    return runner


async def serve(
    config: dict[str, Any],
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[RootContext], None] | None = None,
    worker_index: int = 0,
    reuse_port: bool = False,
) -> None:
    """Run until ``stop`` is set (or a signal arrives), then shut down in order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests): the caller sets ``stop``
    shutdown_timeout = config["storage-proxy"]["shutdown-timeout"].total_seconds()
    header_timeout = config["storage-proxy"]["request-header-timeout"].total_seconds()
    # All workers of a node share one node id: only the first registers it (one lease).
    ctx = await build_root_context(config, register_node=worker_index == 0)
    runners: list[web.AppRunner] = []
    inflight = InflightRequests()
    try:
        await _start_listeners(ctx, runners, inflight, reuse_port)
        servers = [r.server for r in runners]
        watchdog = asyncio.create_task(
            inflight.watch(lambda: servers, header_timeout), name="connection-watchdog"
        )
        ctx.exit_stack.push_async_callback(_cancel, watchdog)
        # Every worker schedules the periodic jobs (trash purge and upload expiry among them);
        # a lease in the metadata store picks the runner.
        ctx.jobs.start()
        if ctx.shared_config is not None and ctx.config["etcd"]["watch"]:
            watcher = asyncio.create_task(follow_shared_config(ctx), name="etcd-config-watch")
            ctx.exit_stack.push_async_callback(_cancel, watcher)
        ctx.exit_stack.push_async_callback(ctx.jobs.stop)
        if worker_index == 0 and config.get("delta-view") is not None:
            runners.extend(await _start_delta_view(config))
        log.info(
            "storage-proxy %s (worker %d) ready with %d volume(s) on the %s event loop",
            ctx.node_id,
            worker_index,
            len(ctx.volumes.items()),
            eventloop.name_of(asyncio.get_running_loop()),
        )
        runtime.freeze_startup()
        if on_ready is not None:
            on_ready(ctx)
        await stop.wait()
        log.info("shutting down: finishing in-flight requests (up to %.0fs)", shutdown_timeout)
    finally:
        await _drain(runners, inflight, shutdown_timeout)
        for runner in reversed(runners):
            await runner.cleanup()
        await ctx.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        log.info("storage-proxy stopped")


async def _start_listeners(
    ctx: RootContext, runners: list[web.AppRunner], inflight: InflightRequests, reuse_port: bool
) -> None:
    """The manager, client and internal listeners (appended to ``runners`` as they start)."""
    sp, api = ctx.config["storage-proxy"], ctx.config["api"]
    shutdown_timeout = sp["shutdown-timeout"].total_seconds()
    header_timeout = sp["request-header-timeout"].total_seconds()
    internal = {
        "service-addr": api["manager"]["internal-addr"] or DEFAULT_INTERNAL_ADDR,
        "ssl-enabled": False,
    }
    for app, listener, what in (
        (create_manager_app(ctx.services), api["manager"], "manager"),
        (create_client_app(ctx.services), api["client"], "client"),
        (create_internal_app(ctx.services), internal, "internal"),
    ):
        runners.append(
            await _start_listener(
                app, listener, shutdown_timeout, what, inflight, reuse_port, header_timeout
            )
        )


async def _start_delta_view(config: dict[str, Any]) -> list[web.AppRunner]:
    from .deltaview import DeltaViewConfig, validate
    from .deltaview.server import start as start_delta_view
    from .infra.redis import redis_url

    view_cfg = config["delta-view"]
    if not isinstance(view_cfg, DeltaViewConfig):
        view_cfg = validate(view_cfg)
    if view_cfg.redis_url is None and config.get("redis"):  # count users across nodes
        view_cfg = dataclasses.replace(view_cfg, redis_url=redis_url(config["redis"]))
    view_runners, _, _ = await start_delta_view(view_cfg)
    return list(view_runners)


async def _drain(runners: list[web.AppRunner], inflight: InflightRequests, within: float) -> None:
    """Stop accepting connections, then let accepted requests (uploads too) finish; new requests
    on kept-alive connections are refused and idle connections closed, so this ends in time."""
    for runner in runners:
        for site in runner.sites:
            server = getattr(site, "_server", None)  # the listening socket; connections stay
            if server is not None:
                server.close()
    inflight.draining = True
    inflight.close_idle(r.server for r in runners if r.server is not None)
    if not await inflight.wait_idle(within):
        log.warning("%d request(s) still running after %.0fs; closing them", inflight.count, within)
        inflight.abort_busy()
        await inflight.wait_idle(CLEANUP_TIMEOUT)


async def follow_shared_config(ctx: RootContext) -> None:
    """Apply changes of the shared config in etcd while running: volumes are added or removed
    live; other sections are logged as needing a restart."""
    assert ctx.shared_config is not None and ctx.volume_deps is not None
    while True:
        try:
            async for change in ctx.shared_config.watch():
                if change.volumes_changed:
                    result = await apply_volume_changes(
                        ctx.volumes, change.old, change.new, ctx.volume_deps
                    )
                    log.info(
                        "volumes from etcd: added %s, removed %s, failed %s",
                        result.added,
                        result.removed,
                        result.failed,
                    )
                    if ctx.node_registry is not None:
                        await ctx.node_registry.update(
                            volumes={n: ctx.volumes.backend_of(n) for n, _ in ctx.volumes.items()}
                        )
                others = sorted(k for k in change.changed if not k.startswith("volume"))
                if others:
                    log.warning("etcd changed %s; these take effect at the next restart", others)
                ctx.config = change.new
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watching the shared config in etcd failed; retrying in 5s")
            await asyncio.sleep(5)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def cancel_leftover_tasks() -> None:
    """For the process entry point: after ``serve`` returns, nothing may be left running."""
    me = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if not leftovers:
        return
    log.warning("cancelling %d task(s) still running at shutdown", len(leftovers))
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
