"""Shared configuration in a real etcd: overlay rules, validation, live watch, volume changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from storage_proxy.config import validate
from storage_proxy.core.errors import ConfigError
from storage_proxy.infra.etcd import EtcdClient
from storage_proxy.infra.shared_config import (
    SharedConfig,
    open_shared_config,
    overlay,
    publish,
    tree_from_entries,
)
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy.volumes.sync import DynamicVolumeRegistry, apply_volume_changes


def _local(tmp_path: Path) -> dict:
    return {
        "storage-proxy": {"node-id": "node-a", "data-dir": str(tmp_path / "data")},
        "api": {"client": {"service-addr": {"host": "127.0.0.1", "port": 7001}}},
        "volume": {"local": {"backend": "vfs", "path": str(tmp_path / "local")}},
    }


def test_overlay_shared_keys_win_and_node_local_keys_stay(tmp_path: Path) -> None:
    tree = {
        "volume": {"shared": {"backend": "vfs", "path": str(tmp_path / "shared")}},
        "redis": {"addr": "10.0.0.5:6379"},
        "storage-proxy": {"secret": "s" * 16, "node-id": "stolen", "data-dir": "/elsewhere"},
        "api": {"client": {"service-addr": "0.0.0.0:1"}, "manager": {"secret": "m" * 16}},
        "dataproxy": {"upload": {"max-size": "1Gi"}},
        "logging": {"level": "DEBUG"},
    }
    cfg = validate(overlay(_local(tmp_path), tree))
    assert set(cfg["volume"]) == {"local", "shared"}
    assert cfg["redis"]["addr"] == {"host": "10.0.0.5", "port": 6379}
    assert cfg["storage-proxy"]["secret"] == "s" * 16
    assert cfg["api"]["manager"]["secret"] == "m" * 16
    assert cfg["dataproxy"]["upload"]["max-size"] == 1 << 30
    # node-local: the file wins
    assert cfg["storage-proxy"]["node-id"] == "node-a"
    assert cfg["storage-proxy"]["data-dir"] == str(tmp_path / "data")
    assert cfg["api"]["client"]["service-addr"] == {"host": "127.0.0.1", "port": 7001}
    assert cfg["logging"]["level"] == "INFO"


def test_overlay_merges_a_volume_field_by_field(tmp_path: Path) -> None:
    tree = {"volume": {"local": {"options": {"quota-usage-ttl": 0}}}}
    cfg = validate(overlay(_local(tmp_path), tree))
    assert cfg["volume"]["local"]["path"] == str(tmp_path / "local")
    assert cfg["volume"]["local"]["options"] == {"quota-usage-ttl": 0}


async def test_key_layout_roundtrip(etcd_client: EtcdClient, tmp_path: Path) -> None:
    await etcd_client.put(
        "config/volume/shared", json.dumps({"backend": "vfs", "path": "/srv/x"}).encode()
    )
    await etcd_client.put("config/volume/shared/fsprefix", b'"sub"')
    await publish(etcd_client, {"storage-proxy": {"session-expire": "2h"}})
    assert (await etcd_client.get("config/storage-proxy/session-expire")) is not None
    tree = tree_from_entries(await etcd_client.get_prefix("config/"))
    assert tree == {
        "volume": {"shared": {"backend": "vfs", "path": "/srv/x", "fsprefix": "sub"}},
        "storage-proxy": {"session-expire": "2h"},
    }
    assert etcd_client.root.startswith("/storage-proxy/test-")


async def test_invalid_shared_config_is_rejected_by_the_one_schema(
    etcd_client: EtcdClient, tmp_path: Path
) -> None:
    await publish(etcd_client, {"volume": {"bad": {"path": "/x"}}})  # no backend
    with pytest.raises(ConfigError, match=r"volume\.bad"):
        await SharedConfig(etcd_client, _local(tmp_path)).load()


async def test_open_shared_config_from_a_local_file(
    etcd_server, etcd_namespace: str, tmp_path: Path
) -> None:
    toml = tmp_path / "sp.toml"
    toml.write_text(
        f'[storage-proxy]\nnode-id = "n1"\n[etcd]\nnamespace = "{etcd_namespace}"\n'
        f'addr = "127.0.0.1:{etcd_server.port}"\n'
    )
    local = validate(
        {"etcd": {"namespace": etcd_namespace, "addr": f"127.0.0.1:{etcd_server.port}"}}
    )
    local["_source"] = str(toml)
    async with EtcdClient(etcd_server.host, etcd_server.port, namespace=etcd_namespace) as c:
        await publish(c, {"redis": {"addr": "10.1.1.1:6380"}, "storage-proxy": {"node-id": "x"}})
    cfg, shared = await open_shared_config(local, environ={})
    assert shared is not None
    try:
        assert cfg["redis"]["addr"]["port"] == 6380
        assert cfg["storage-proxy"]["node-id"] == "n1"
        assert cfg["etcd"]["namespace"] == etcd_namespace
    finally:
        await shared.client.delete_prefix("")
        await shared.client.close()
    same, none = await open_shared_config(validate({}), environ={})
    assert none is None and same["etcd"] is None


async def test_watch_applies_a_new_volume_without_restart(
    etcd_client: EtcdClient, tmp_path: Path
) -> None:
    shared = SharedConfig(etcd_client, _local(tmp_path), debounce=0.05)
    cfg = await shared.load()
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    deps = VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    registry = DynamicVolumeRegistry.instantiate(cfg["volume"], deps)
    await registry.start()
    changes = shared.watch()
    try:
        # an invalid write is skipped; the valid one after it takes effect
        await publish(etcd_client, {"volume": {"broken": {"path": "/x"}}})
        await etcd_client.delete_prefix("config/volume/broken")
        await publish(
            etcd_client, {"volume": {"shared": {"backend": "vfs", "path": str(tmp_path / "sh")}}}
        )
        change = await asyncio.wait_for(anext(changes), 10)
        assert change.volumes_changed and "volume.shared" in change.changed
        result = await apply_volume_changes(registry, change.old, change.new, deps)
        assert result.added == ["shared"] and not result.failed
        assert (tmp_path / "sh").is_dir()
        assert sorted(n for n, _ in registry.items()) == ["local", "shared"]

        await etcd_client.delete_prefix("config/volume/shared")
        change = await asyncio.wait_for(anext(changes), 10)
        result = await apply_volume_changes(registry, change.old, change.new, deps)
        assert result.removed == ["shared"]
        assert [n for n, _ in registry.items()] == ["local"]

        await publish(etcd_client, {"volume": {"nope": {"backend": "no-such", "path": "/x"}}})
        change = await asyncio.wait_for(anext(changes), 10)
        result = await apply_volume_changes(registry, change.old, change.new, deps)
        assert "nope" in result.failed and [n for n, _ in registry.items()] == ["local"]
    finally:
        await changes.aclose()
        await registry.stop()
        await store.close()


async def test_rewatch_yields_a_change_missed_while_not_watching(
    etcd_client: EtcdClient, tmp_path: Path
) -> None:
    shared = SharedConfig(etcd_client, _local(tmp_path), debounce=0.05)
    await shared.load()
    await publish(etcd_client, {"redis": {"addr": "10.9.9.9:6379"}})  # nobody watching
    changes = shared.watch()
    try:
        change = await asyncio.wait_for(anext(changes), 10)
        assert "redis" in change.changed and change.new["redis"]["addr"]["host"] == "10.9.9.9"
    finally:
        await changes.aclose()
