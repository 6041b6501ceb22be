"""The root context: every resource the daemon shares, built once at start-up, closed in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .core.errors import ConfigError
from .infra.cache import CacheKinds, SharedCache
from .infra.node_registry import NodeRegistry, node_info_from_config
from .infra.pubsub import RedisSubscriber
from .infra.redis import RedisLeases, RedisUnavailable, redis_client
from .infra.shared_config import SharedConfig, open_shared_config
from .infra.volume_sync import DynamicVolumeRegistry
from .metadata.cached import CachedMetadataStore
from .metadata.etcd import EtcdMetadataStore
from .metadata.sqlite import SqliteMetadataStore
from .metadata.store import MetadataStore
from .metrics import DaemonMetrics
from .secrets import MANAGER_SECRET_FILE, TOKEN_SECRET_FILE, Secret, ensure_secret
from .services.bgtasks import BackgroundTaskService
from .services.dataproxy import DataProxyService, DataProxySettings
from .services.jobs import JobRunner
from .services.jobs.common import JobDeps
from .services.permissions import PermissionService
from .services.tokens import TokenService
from .services.uploads import UploadService
from .services.usage import UsageService
from .volumes import beneath
from .volumes.abc import VolumeDeps
from .volumes.quota import LedgerKeeper
from .volumes.scan import TreeScanner

log = logging.getLogger(__name__)

#: Redis channel on which a process announces that a background task changed (progress, end).
BGTASK_EVENTS = "storage-proxy:bgtask-events"


@dataclass
class RootContext:
    config: dict[str, Any]
    node_id: str
    manager_secret: Secret
    token_secret: Secret
    metadata: MetadataStore
    scanner: TreeScanner
    volumes: DynamicVolumeRegistry
    tokens: TokenService
    uploads: UploadService
    permissions: PermissionService
    dataproxy: DataProxyService
    usage: UsageService
    metrics: DaemonMetrics = field(default_factory=DaemonMetrics)
    shared_config: SharedConfig | None = None  # etcd, when configured
    node_registry: NodeRegistry | None = None
    volume_deps: VolumeDeps | None = None
    redis: RedisLeases | None = None
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    # Background tasks and periodic jobs (set once the services they use exist).
    bgtasks: BackgroundTaskService = field(init=False)
    jobs: JobRunner = field(init=False)

    async def close(self) -> None:
        await self.exit_stack.aclose()


async def build_root_context(config: dict[str, Any], *, register_node: bool = True) -> RootContext:
    """Open the metadata store, start the scanner and every volume; undo all of it on failure."""
    stack = AsyncExitStack()
    try:
        # The shared configuration in etcd (when configured) overlays the local file first.
        config, shared = await open_shared_config(config)
        if shared is not None:
            stack.push_async_callback(shared.client.close)
        sp = config["storage-proxy"]
        data_dir = Path(sp["data-dir"])
        manager_secret = await asyncio.to_thread(
            ensure_secret, config["api"]["manager"]["secret"], data_dir, MANAGER_SECRET_FILE
        )
        token_secret = await asyncio.to_thread(
            ensure_secret, sp["secret"], data_dir, TOKEN_SECRET_FILE
        )
        _announce_secret("manager API secret (X-BackendAI-Storage-Auth-Token)", manager_secret)
        _announce_secret("client token signing secret", token_secret)

        metadata: MetadataStore
        if config["metadata"]["backend"] == "etcd":
            if shared is None:
                raise ConfigError('[metadata] backend = "etcd" needs an [etcd] section')
            metadata = EtcdMetadataStore(shared.client)
        else:
            metadata = SqliteMetadataStore(config["metadata"]["path"])
        await metadata.open()
        stack.push_async_callback(metadata.close)

        metrics = DaemonMetrics()
        leases = bus = subscriber = cache = None
        kinds = CacheKinds.from_config(config["cache"])
        if config.get("redis"):
            leases = RedisLeases.from_config(config["redis"], holder=sp["node-id"])
            stack.push_async_callback(leases.close)
            bus = redis_client(config["redis"], retries=False)
            stack.push_async_callback(bus.aclose)
            subscriber = RedisSubscriber(bus)
            stack.push_async_callback(subscriber.close)
            if config["cache"]["enabled"]:
                cache = SharedCache(
                    bus,
                    subscriber,
                    local_max_entries=config["cache"]["local-max-entries"],
                    on_lookup=metrics.cache_lookup,
                )
                metadata = CachedMetadataStore(metadata, cache, kinds)

        scanner = TreeScanner(workers=sp["scan-workers"])
        stack.push_async_callback(scanner.close)
        await scanner.start()

        beneath.use_walk(sp["path-resolution"] == "walk")
        io_pool = ThreadPoolExecutor(sp["io-threads"], thread_name_prefix="file-io")
        stack.callback(io_pool.shutdown, wait=False, cancel_futures=True)
        holder = f"{sp['node-id']}/{os.getpid()}"
        keeper = LedgerKeeper(metadata, holder)
        await keeper.start()
        stack.push_async_callback(keeper.stop)
        deps = VolumeDeps(
            metadata=metadata,
            scanner=scanner,
            scandir_limit=sp["scandir-limit"],
            io=io_pool,
            holder=holder,
        )
        volumes = DynamicVolumeRegistry.instantiate(config["volume"], deps)
        await volumes.start()
        stack.push_async_callback(volumes.stop)

        node_registry = None
        if shared is not None and register_node and config["etcd"]["register-node"]:
            node_registry = NodeRegistry(
                shared.client, node_info_from_config(config), ttl=config["etcd"]["node-ttl"]
            )
            await node_registry.register()
            stack.push_async_callback(node_registry.close)  # before the volumes stop

        jobs_cfg = config["jobs"]
        bgtasks = BackgroundTaskService(
            metadata,
            sp["node-id"],
            heartbeat=jobs_cfg["bgtask-heartbeat"].total_seconds(),
            stale_after=jobs_cfg["bgtask-stale-after"].total_seconds(),
        )
        bgtasks.on_started, bgtasks.on_finished = metrics.bgtask_started, metrics.bgtask_finished
        if bus is not None and subscriber is not None:
            subscriber.listen(BGTASK_EVENTS, bgtasks.notify)
            bgtasks.announce = partial(bus.publish, BGTASK_EVENTS)
        await bgtasks.start()  # marks tasks of dead runners interrupted
        stack.push_async_callback(bgtasks.stop)

        if leases is not None and subscriber is not None:
            await subscriber.start()
            try:
                await leases.ping()
            except RedisUnavailable as e:  # serve what can be served; Redis may come back
                log.warning("%s; uploads answer 503 until it is back", e.detail)
    except BaseException:
        await stack.aclose()
        raise
    usage = UsageService(volumes, cache, kinds)
    permissions = PermissionService(metadata)
    ctx = RootContext(
        config=config,
        node_id=sp["node-id"],
        manager_secret=manager_secret,
        token_secret=token_secret,
        metadata=metadata,
        scanner=scanner,
        volumes=volumes,
        tokens=TokenService(token_secret.value, sp["session-expire"]),
        uploads=UploadService(
            metadata,
            volumes,
            max_upload_size=sp["max-upload-size"],
            default_expiry=sp["session-expire"],
            permissions=permissions,
            on_received=lambda volume, n: metrics.uploaded.labels(volume).inc(n),
            ensure_writable=bgtasks.ensure_writable,
            on_published=usage.changed,
            leases=leases,
        ),
        permissions=permissions,
        usage=usage,
        dataproxy=DataProxyService(
            DataProxySettings.from_config(config), volumes, token_secret.value
        ),
        metrics=metrics,
        shared_config=shared,
        node_registry=node_registry,
        volume_deps=deps,
        exit_stack=stack,
    )
    ctx.redis = leases
    ctx.bgtasks = bgtasks
    ctx.jobs = JobRunner(
        JobDeps(volumes, metadata, ctx.uploads, bgtasks, config["jobs"], ctx.usage)
    )
    return ctx


def _announce_secret(what: str, secret: Secret) -> None:
    if secret.path is None:
        return
    verb = "generated" if secret.generated_now else "loaded"
    log.info("%s %s (%s); read it with: cat %s", what, verb, secret.fingerprint, secret.path)
