"""The root context: every resource the daemon shares, built once at start-up, closed in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from .api.metrics import DaemonMetrics
from .core.dialect import Dialect
from .core.errors import ConfigError
from .core.types import VFolderID
from .infra.cache import CacheKinds, SharedCache
from .infra.node_registry import NodeRegistry, node_info_from_config
from .infra.pubsub import RedisSubscriber
from .infra.redis import RedisLeases, RedisUnavailable, redis_client
from .infra.shared_config import SharedConfig, open_shared_config
from .metadata.cached import CachedMetadataStore
from .metadata.etcd import EtcdMetadataStore
from .metadata.sqlite import SqliteMetadataStore
from .metadata.store import MetadataStore
from .secrets import MANAGER_SECRET_FILE, TOKEN_SECRET_FILE, Secret, ensure_secret
from .services.access import AccessService
from .services.audit import AuditLog
from .services.batch import BatchService
from .services.bgtasks import BackgroundTaskService
from .services.books import MetadataBooks
from .services.browse import BrowseService
from .services.dataproxy import DataProxyService, DataProxySettings
from .services.facade import DoorSettings, Services
from .services.fairness import FairShares
from .services.files import FileService
from .services.gate import Gate
from .services.health import HealthService
from .services.jobs import JobRunner
from .services.jobs.common import JobDeps
from .services.jobs.settings import JobSettings
from .services.keeping import VersionSettings
from .services.ledger import LedgerKeeper
from .services.quotas import ALERT_EVENTS, QuotaAlerts, QuotaService
from .services.snapshot_policies import SnapshotPolicyService
from .services.snapshots import SnapshotService
from .services.stats import StatsService
from .services.tokens import TokenService, UserTokenPolicy
from .services.transfers import TransferService
from .services.uploads import UploadService
from .services.usage import UsageService
from .services.versions import VersionService
from .services.vfolders import VFolderService
from .volumes import beneath, fstree
from .volumes.abc import VolumeDeps
from .volumes.scan import TreeScanner
from .volumes.sync import DynamicVolumeRegistry

log = logging.getLogger(__name__)

#: Redis channel on which a process announces that a background task changed (progress, end).
BGTASK_EVENTS = "storage-proxy:bgtask-events"


@dataclass
class RootContext:
    """The composition root's product: the doors get ``services``; the daemon's own plumbing
    (volume sync, node registry, shutdown) uses the rest."""

    config: dict[str, Any]
    node_id: str
    manager_secret: Secret
    token_secret: Secret
    metadata: MetadataStore
    scanner: TreeScanner
    volumes: DynamicVolumeRegistry
    services: Services
    usage: UsageService
    metrics: DaemonMetrics
    shared_config: SharedConfig | None = None  # etcd, when configured
    node_registry: NodeRegistry | None = None
    volume_deps: VolumeDeps | None = None
    redis: RedisLeases | None = None
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    # the services most used by tests and the daemon's plumbing, by name
    @property
    def tokens(self) -> TokenService:
        return self.services.tokens

    @property
    def uploads(self) -> UploadService:
        return self.services.uploads

    @property
    def bgtasks(self) -> BackgroundTaskService:
        return self.services.bgtasks

    @property
    def jobs(self) -> JobRunner:
        return self.services.jobs

    @property
    def dataproxy(self) -> DataProxyService:
        return self.services.dataproxy

    @property
    def access(self) -> AccessService:
        return self.services.access

    async def close(self) -> None:
        await self.exit_stack.aclose()


@dataclass
class _Infra:
    """What the services are built on (opened by :func:`_open_infra`)."""

    config: dict[str, Any]
    shared: SharedConfig | None
    manager_secret: Secret
    token_secret: Secret
    metadata: MetadataStore
    metrics: DaemonMetrics
    leases: RedisLeases | None
    cache: SharedCache | None
    kinds: CacheKinds
    scanner: TreeScanner
    deps: VolumeDeps
    volumes: DynamicVolumeRegistry
    node_registry: NodeRegistry | None
    bgtasks: BackgroundTaskService
    bus: Any = None  # the Redis client for news between workers
    subscriber: RedisSubscriber | None = None


async def build_root_context(config: dict[str, Any], *, register_node: bool = True) -> RootContext:
    """Open the metadata store, start the scanner and every volume, build the services; undo all
    of it on failure."""
    stack = AsyncExitStack()
    try:
        infra = await _open_infra(stack, config, register_node)
        services, usage = _build_services(stack, infra)
        await _start_listening(infra, services)
    except BaseException:
        await stack.aclose()
        raise
    return RootContext(
        config=infra.config,
        node_id=infra.config["storage-proxy"]["node-id"],
        manager_secret=infra.manager_secret,
        token_secret=infra.token_secret,
        metadata=infra.metadata,
        scanner=infra.scanner,
        volumes=infra.volumes,
        services=services,
        usage=usage,
        metrics=infra.metrics,
        shared_config=infra.shared,
        node_registry=infra.node_registry,
        volume_deps=infra.deps,
        redis=infra.leases,
        exit_stack=stack,
    )


async def _open_infra(stack: AsyncExitStack, config: dict[str, Any], register_node: bool) -> _Infra:
    # The shared configuration in etcd (when configured) overlays the local file first.
    config, shared = await open_shared_config(config)
    if shared is not None:
        stack.push_async_callback(shared.client.close)
    sp = config["storage-proxy"]
    data_dir = Path(sp["data-dir"])
    manager_secret = await asyncio.to_thread(
        ensure_secret, config["api"]["manager"]["secret"], data_dir, MANAGER_SECRET_FILE
    )
    token_secret = await asyncio.to_thread(ensure_secret, sp["secret"], data_dir, TOKEN_SECRET_FILE)
    _announce_secret("manager API secret (X-BackendAI-Storage-Auth-Token)", manager_secret)
    _announce_secret("client token signing secret", token_secret)

    metadata = await _open_metadata(stack, config, shared)
    metrics = DaemonMetrics()
    kinds = CacheKinds.from_config(config["cache"])
    leases, bus, subscriber, cache = _open_redis(stack, config, metrics, kinds)
    if cache is not None:
        metadata = CachedMetadataStore(metadata, cache, kinds)

    scanner = TreeScanner(workers=sp["scan-workers"])
    stack.push_async_callback(scanner.close)
    await scanner.start()

    beneath.use_walk(sp["path-resolution"] == "walk")
    fstree.set_max_depth(sp["max-tree-depth"])
    io_pool = ThreadPoolExecutor(sp["io-threads"], thread_name_prefix="file-io")
    stack.callback(io_pool.shutdown, wait=False, cancel_futures=True)
    holder = f"{sp['node-id']}/{os.getpid()}"
    keeper = LedgerKeeper(metadata, holder)
    await keeper.start()
    stack.push_async_callback(keeper.stop)
    deps = VolumeDeps(
        books=MetadataBooks(metadata),
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

    jobs_cfg = JobSettings.from_config(config["jobs"])
    bgtasks = BackgroundTaskService(
        metadata,
        sp["node-id"],
        heartbeat=jobs_cfg.bgtask_heartbeat,
        stale_after=jobs_cfg.bgtask_stale_after,
    )
    bgtasks.on_started, bgtasks.on_finished = metrics.bgtask_started, metrics.bgtask_finished
    if bus is not None and subscriber is not None:
        subscriber.listen(BGTASK_EVENTS, bgtasks.notify)
        bgtasks.announce = partial(bus.publish, BGTASK_EVENTS)
    await bgtasks.start()  # marks tasks of dead runners interrupted
    stack.push_async_callback(bgtasks.stop)

    return _Infra(
        config, shared, manager_secret, token_secret, metadata, metrics, leases, cache, kinds,
        scanner, deps, volumes, node_registry, bgtasks, bus, subscriber,
    )  # fmt: skip


async def _start_listening(infra: _Infra, services: Services) -> None:
    """Redis news for every worker (task progress, quota alerts), once everything listens."""
    if infra.bus is None or infra.subscriber is None:
        return
    services.quotas.alerts.publish = partial(infra.bus.publish, ALERT_EVENTS)
    infra.subscriber.listen(ALERT_EVENTS, services.quotas.alerts.deliver)
    await infra.subscriber.start()
    if infra.leases is not None:
        try:
            await infra.leases.ping()
        except RedisUnavailable as e:  # serve what can be served; Redis may come back
            log.warning("%s; uploads answer 503 until it is back", e.detail)


def _open_redis(
    stack: AsyncExitStack, config: dict[str, Any], metrics: DaemonMetrics, kinds: CacheKinds
) -> tuple[RedisLeases | None, Any, RedisSubscriber | None, SharedCache | None]:
    """Leases, the bus, its subscriber and the shared cache, when ``[redis]`` is configured."""
    if not config.get("redis"):
        return None, None, None, None
    leases = RedisLeases.from_config(config["redis"], holder=config["storage-proxy"]["node-id"])
    stack.push_async_callback(leases.close)
    bus = redis_client(config["redis"], retries=False)
    stack.push_async_callback(bus.aclose)
    subscriber = RedisSubscriber(bus)
    stack.push_async_callback(subscriber.close)
    cache = None
    if config["cache"]["enabled"]:
        cache = SharedCache(
            bus,
            subscriber,
            local_max_entries=config["cache"]["local-max-entries"],
            on_lookup=metrics.cache_lookup,
        )
    return leases, bus, subscriber, cache


async def _open_metadata(
    stack: AsyncExitStack, config: dict[str, Any], shared: SharedConfig | None
) -> MetadataStore:
    metadata: MetadataStore
    if config["metadata"]["backend"] == "etcd":
        if shared is None:
            raise ConfigError('[metadata] backend = "etcd" needs an [etcd] section')
        metadata = EtcdMetadataStore(shared.client)
    else:
        metadata = SqliteMetadataStore(config["metadata"]["path"])
    await metadata.open()
    stack.push_async_callback(metadata.close)
    return metadata


def _quota_alerts(stack: AsyncExitStack, infra: _Infra, audit: AuditLog) -> QuotaAlerts:
    alerts = QuotaAlerts(
        audit,
        infra.config["quota"]["alert-thresholds"],
        infra.config["quota"]["alert-webhook"],
        gauge=infra.metrics.quota_ratio,
        claims=infra.metadata,
        holder=infra.deps.holder,
    )
    stack.push_async_callback(alerts.close)
    return alerts


def _build_services(stack: AsyncExitStack, infra: _Infra) -> tuple[Services, UsageService]:
    """Every service, each built whole (nothing is patched in afterwards)."""
    config, volumes, metadata = infra.config, infra.volumes, infra.metadata
    sp = config["storage-proxy"]
    sink = config["audit"]["sink"] or str(Path(sp["data-dir"]) / "audit.log")
    audit = AuditLog(sink, backend_of=volumes.backend_of)
    stack.callback(audit.close)
    usage = UsageService(volumes, infra.cache, infra.kinds)
    job_settings = JobSettings.from_config(config["jobs"])
    vfolders = VFolderService(
        volumes, metadata, infra.bgtasks, usage, audit, dict(job_settings.retention)
    )
    access = AccessService(metadata, vfolders, audit)
    alerts = _quota_alerts(stack, infra, audit)
    quotas = QuotaService(volumes, metadata, vfolders, usage, alerts, audit)
    gate = Gate(volumes, access, infra.bgtasks, audit, FairShares(sp["costly-per-caller"]))
    keeping = VersionSettings(metadata)
    files = FileService(gate, audit, usage, quotas, infra.bgtasks, keeping)

    async def published(volume: str, vfid: VFolderID) -> None:
        await usage.changed(volume, vfid)
        await quotas.observe_written(volume, vfid)

    uploads = UploadService(
        metadata,
        volumes,
        gate,
        max_upload_size=sp["max-upload-size"],
        default_expiry=sp["session-expire"],
        audit=audit,
        on_received=lambda volume, n: infra.metrics.uploaded.labels(volume).inc(n),
        on_published=published,
        leases=infra.leases,
        versions=keeping,
    )
    tokens = TokenService(
        infra.token_secret.value, sp["session-expire"], UserTokenPolicy.from_config(config)
    )
    dataproxy = DataProxyService(
        DataProxySettings.from_config(config), volumes, infra.token_secret.value, files, vfolders
    )
    snapshots = SnapshotService(gate, infra.bgtasks, audit, usage, quotas, keeping)
    versions = VersionService(gate, keeping, audit, usage, quotas)
    deps = JobDeps(volumes, metadata, uploads, infra.bgtasks, job_settings, usage, vfolders, quotas)
    gauges = infra.metrics.snapshot_totals
    jobs = JobRunner(replace(deps, snapshots=snapshots, on_snapshot_totals=gauges))
    services = Services(
        settings=DoorSettings(
            manager_secret=infra.manager_secret.value,
            transfer_idle_timeout=sp["transfer-idle-timeout"],
            max_upload_size=sp["max-upload-size"],
            relay_threads=sp["relay-threads"],
            fast_lane=sp["fast-lane"],
            dialect=Dialect(config["api"]["manager"]["compat"]),
        ),
        vfolders=vfolders,
        access=access,
        quotas=quotas,
        files=files,
        snapshots=snapshots,
        snapshot_policies=SnapshotPolicyService(gate, volumes, metadata, audit),
        versions=versions,
        uploads=uploads,
        transfers=TransferService(tokens, files, uploads, versions, infra.bgtasks),
        tokens=tokens,
        dataproxy=dataproxy,
        browse=BrowseService(
            gate, tokens, sp["download-link-max-expire"], lambda: dataproxy.client_url
        ),
        stats=StatsService(access, vfolders, volumes, usage),
        bgtasks=infra.bgtasks,
        jobs=jobs,
        audit=audit,
        health=HealthService(metadata, volumes, infra.leases),
        metrics=infra.metrics,
        batch=BatchService(gate, files, infra.bgtasks),
    )
    return services, usage


def _announce_secret(what: str, secret: Secret) -> None:
    if secret.path is None:
        return
    verb = "generated" if secret.generated_now else "loaded"
    log.info("%s %s (%s); read it with: cat %s", what, verb, secret.fingerprint, secret.path)
