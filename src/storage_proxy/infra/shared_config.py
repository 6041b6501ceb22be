"""Global configuration in etcd, overlaid on the local TOML, and watched for live changes.

Why: several proxy nodes must agree on volumes, secrets and limits without copying a file to each
node, while what only makes sense per node (listen addresses, data-dir, node-id) stays local.

Layout: ``config/<section>/<key>/...`` under the namespace root holds one JSON value per key; an
object value is deep-merged at its path, deeper keys after shallower ones. Only paths under
:data:`SHARED_KEYS` are taken from etcd (they win over the file and the environment); anything
else found there is ignored with a warning. The merged raw tree is validated by the one schema,
``storage_proxy.config.validate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ENV_PREFIX, _env_overrides, read_toml, validate
from ..core.errors import ConfigError
from .etcd import Entry, EtcdClient, join, unquote_part

log = logging.getLogger(__name__)

CONFIG_PREFIX = "config/"

# Dotted paths etcd may set; everything else is node-local and comes from the local file only.
SHARED_KEYS: tuple[tuple[str, ...], ...] = (
    ("volume",),
    ("redis",),
    ("dataproxy",),
    ("storage-proxy", "secret"),
    ("storage-proxy", "session-expire"),
    ("storage-proxy", "max-upload-size"),
    ("storage-proxy", "scandir-limit"),
    ("api", "manager", "secret"),
)


def _is_shared(path: tuple[str, ...]) -> bool:
    return any(path[: len(s)] == s for s in SHARED_KEYS)


def _leads_to_shared(path: tuple[str, ...]) -> bool:
    return any(s[: len(path)] == path for s in SHARED_KEYS)


def _deep_merge(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)


def tree_from_entries(entries: Iterable[Entry]) -> dict[str, Any]:
    """``config/a/b = <json>`` entries → ``{"a": {"b": ...}}`` (shallower keys applied first)."""
    tree: dict[str, Any] = {}
    parsed: list[tuple[list[str], Any]] = []
    for entry in entries:
        parts = [unquote_part(p) for p in entry.key[len(CONFIG_PREFIX) :].split("/") if p]
        try:
            value = json.loads(entry.value)
        except ValueError:
            log.warning("etcd %s%s: not JSON, ignored", CONFIG_PREFIX, "/".join(parts))
            continue
        if parts:
            parsed.append((parts, value))
    for parts, value in sorted(parsed, key=lambda pv: len(pv[0])):
        node = tree
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            _deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return tree


def overlay(local_cfg: Mapping[str, Any], etcd_tree: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the raw local config with the etcd tree: etcd wins for shared keys only."""
    merged = copy.deepcopy(dict(local_cfg))
    ignored: list[str] = []

    def apply(dst: dict[str, Any], src: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in src.items():
            here = (*path, key)
            if _is_shared(here):
                if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
                    _deep_merge(dst[key], value)
                else:
                    dst[key] = copy.deepcopy(value)
            elif isinstance(value, Mapping) and _leads_to_shared(here):
                child = dst.get(key)
                if not isinstance(child, dict):
                    child = dst[key] = {}
                apply(child, value, here)
            else:
                ignored.append(".".join(here))

    apply(merged, etcd_tree, ())
    if ignored:
        log.warning("etcd config keys ignored (node-local or unknown): %s", ", ".join(ignored))
    return merged


def flatten(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The inverse of :func:`tree_from_entries`: one etcd key per leaf (relative keys)."""
    out: dict[str, bytes] = {}
    for key, value in tree.items():
        here = (*path, key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, here))
        else:
            out[CONFIG_PREFIX + join(*here)] = json.dumps(value).encode()
    return out


async def publish(client: EtcdClient, tree: Mapping[str, Any]) -> None:
    """Write a (partial) config tree into etcd, one key per leaf; for operators and tests."""
    for key, value in flatten(tree).items():
        await client.put(key, value)


def read_local_raw(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str, Path | None]:
    """The local file plus ``STORAGE_PROXY_*`` overrides, not yet validated: overlay's input."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(environ[ENV_PREFIX + "CONFIG"])
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    _env_overrides(raw, environ)
    source = str(path) if path else "embedded defaults"
    return raw, source, path.resolve().parent if path else None


@dataclass(frozen=True)
class ConfigChange:
    old: dict[str, Any]
    new: dict[str, Any]
    revision: int
    changed: frozenset[str] = field(default_factory=frozenset)  # "volume.x", "redis.addr", …

    @property
    def volumes_changed(self) -> bool:
        return any(c == "volume" or c.startswith("volume.") for c in self.changed)


def _changed_paths(old: Mapping[str, Any], new: Mapping[str, Any]) -> frozenset[str]:
    out: set[str] = set()
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.update(f"{key}.{sub}" for sub in set(a) | set(b) if a.get(sub) != b.get(sub))
        else:
            out.add(str(key))
    return frozenset(out)


class SharedConfig:
    """The validated, merged config of this node, reloaded whenever ``config/`` changes."""

    def __init__(
        self,
        client: EtcdClient,
        local_raw: Mapping[str, Any],
        *,
        source: str = "config",
        base_dir: Path | None = None,
        debounce: float = 0.2,
    ) -> None:
        self.client = client
        self.local_raw = dict(local_raw)
        self.source = source
        self.base_dir = base_dir
        self.debounce = debounce
        self.current: dict[str, Any] | None = None
        self.revision = 0

    async def _read(self) -> tuple[dict[str, Any], int]:
        entries, revision = await self.client.snapshot(CONFIG_PREFIX)
        merged = overlay(self.local_raw, tree_from_entries(entries))
        cfg = validate(
            merged, source=f"{self.source} + etcd {self.client.root}", base_dir=self.base_dir
        )
        cfg["_source"] = self.source
        return cfg, revision

    async def load(self) -> dict[str, Any]:
        """Read and validate once; a bad shared config stops start-up (ConfigError)."""
        self.current, self.revision = await self._read()
        return self.current

    async def _reload(self) -> ConfigChange | None:
        try:
            new, revision = await self._read()
        except ConfigError as e:
            log.error("shared config in etcd rejected, keeping the previous one: %s", e)
            return None
        self.revision = max(self.revision, revision)
        old = self.current or {}
        if new == old:
            return None
        self.current = new
        return ConfigChange(old, new, revision, _changed_paths(old, new))

    async def watch(self) -> AsyncIterator[ConfigChange]:
        """Yield each effective change; an invalid shared config is logged and skipped.

        It starts with a fresh read (a change missed while not watching is yielded first), so
        after an etcd error the caller simply calls ``watch()`` again, after a short pause.
        """
        if self.current is None:
            await self.load()
        elif (caught_up := await self._reload()) is not None:
            yield caught_up
        watch = await self.client.watch_prefix(CONFIG_PREFIX, start_revision=self.revision + 1)
        events: asyncio.Queue[int | BaseException] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for ev in watch:
                    events.put_nowait(ev.revision)
            except Exception as e:  # connection lost, revision compacted, ...
                events.put_nowait(e)

        pumper = asyncio.create_task(pump(), name="etcd-config-watch")
        try:
            while True:
                item = await events.get()
                if isinstance(item, BaseException):
                    raise item
                if item <= self.revision:
                    continue  # already part of the last snapshot
                await asyncio.sleep(self.debounce)  # one reload for a burst of writes
                if (change := await self._reload()) is not None:
                    yield change
        finally:
            pumper.cancel()
            with contextlib.suppress(BaseException):
                await pumper
            with contextlib.suppress(Exception):
                await watch.cancel()


async def open_shared_config(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], SharedConfig | None]:
    """Entry point for the daemon: the validated local config in, the merged config out.

    Without ``[etcd]`` the config is returned unchanged and no client is opened. Otherwise the
    caller owns the returned :class:`SharedConfig` and closes ``shared.client`` at shutdown.
    """
    if not config.get("etcd"):
        return dict(config), None
    src = config.get("_source")
    raw, source, base_dir = read_local_raw(Path(src) if src else None, environ)
    client = EtcdClient.from_config(config["etcd"])
    await client.connect()
    shared = SharedConfig(client, raw, source=source, base_dir=base_dir)
    try:
        return await shared.load(), shared
    except BaseException:
        await client.close()
        raise
