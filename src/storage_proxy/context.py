"""The root context: every resource the daemon shares, built once at start-up, closed in reverse."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metadata.sqlite import SqliteMetadataStore
from .metadata.store import MetadataStore
from .metrics import DaemonMetrics
from .secrets import MANAGER_SECRET_FILE, TOKEN_SECRET_FILE, Secret, ensure_secret
from .services.dataproxy import DataProxyService, DataProxySettings
from .services.permissions import PermissionService
from .services.tokens import TokenService
from .services.uploads import UploadService
from .volumes.abc import VolumeDeps
from .volumes.registry import VolumeRegistry
from .volumes.scan import TreeScanner

log = logging.getLogger(__name__)


@dataclass
class RootContext:
    config: dict[str, Any]
    node_id: str
    manager_secret: Secret
    token_secret: Secret
    metadata: MetadataStore
    scanner: TreeScanner
    volumes: VolumeRegistry
    tokens: TokenService
    uploads: UploadService
    permissions: PermissionService
    dataproxy: DataProxyService
    metrics: DaemonMetrics = field(default_factory=DaemonMetrics)
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def close(self) -> None:
        await self.exit_stack.aclose()


async def build_root_context(config: dict[str, Any]) -> RootContext:
    """Open the metadata store, start the scanner and every volume; undo all of it on failure."""
    sp = config["storage-proxy"]
    data_dir = Path(sp["data-dir"])
    stack = AsyncExitStack()
    try:
        manager_secret = await asyncio.to_thread(
            ensure_secret, config["api"]["manager"]["secret"], data_dir, MANAGER_SECRET_FILE
        )
        token_secret = await asyncio.to_thread(
            ensure_secret, sp["secret"], data_dir, TOKEN_SECRET_FILE
        )
        _announce_secret("manager API secret (X-BackendAI-Storage-Auth-Token)", manager_secret)
        _announce_secret("client token signing secret", token_secret)

        metadata = SqliteMetadataStore(config["metadata"]["path"])
        await metadata.open()
        stack.push_async_callback(metadata.close)

        scanner = TreeScanner(workers=sp["scan-workers"])
        stack.push_async_callback(scanner.close)
        await scanner.start()

        deps = VolumeDeps(metadata=metadata, scanner=scanner, scandir_limit=sp["scandir-limit"])
        volumes = VolumeRegistry.instantiate(config["volume"], deps)
        await volumes.start()
        stack.push_async_callback(volumes.stop)

        if config.get("etcd") or config.get("redis"):
            log.warning(
                "[etcd]/[redis] are configured but this build keeps all state locally "
                "(SQLite metadata, in-process caches)"
            )
    except BaseException:
        await stack.aclose()
        raise
    metrics = DaemonMetrics()
    return RootContext(
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
            on_received=lambda volume, n: metrics.uploaded.labels(volume).inc(n),
        ),
        permissions=PermissionService(metadata),
        dataproxy=DataProxyService(
            DataProxySettings.from_config(config), volumes, token_secret.value
        ),
        metrics=metrics,
        exit_stack=stack,
    )


def _announce_secret(what: str, secret: Secret) -> None:
    if secret.path is None:
        return
    verb = "generated" if secret.generated_now else "loaded"
    log.info("%s %s (%s); read it with: cat %s", what, verb, secret.fingerprint, secret.path)
