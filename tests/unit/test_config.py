"""Config: defaults, Backend.AI key layout, environment overrides, errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from storage_proxy.config import load_config, validate
from storage_proxy.core.errors import ConfigError
from storage_proxy.core.units import parse_duration, parse_size

BAI_STYLE = """
[etcd]
namespace = "local"
addr = { host = "127.0.0.1", port = 2379 }
user = ""
password = ""

[storage-proxy]
node-id = "sp1"
num-proc = 2
pid-file = "/dev/null"
event-loop = "asyncio"
scandir-limit = 500
max-upload-size = "100g"
secret = "jwt-secret-0123456789"
session-expire = "1d"
aiomonitor-termui-port = 48321
use-watcher = false

[api.client]
service-addr = { host = "0.0.0.0", port = 16021 }
ssl-enabled = false

[api.manager]
service-addr = { host = "127.0.0.1", port = 16022 }
ssl-enabled = false
secret = "manager-secret"

[volume.vol1]
backend = "vfs"
path = "/srv/vol1"

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "verbose"

[debug]
enabled = false
"""


def test_embedded_defaults(tmp_path: Path) -> None:
    cfg = load_config(None, {"XDG_DATA_HOME": str(tmp_path)})
    assert cfg["api"]["client"]["service-addr"] == {"host": "127.0.0.1", "port": 6021}
    assert cfg["api"]["manager"]["service-addr"] == {"host": "127.0.0.1", "port": 6022}
    assert cfg["api"]["manager"]["secret"] is None  # generated at start-up
    assert list(cfg["volume"]) == ["local"]
    assert cfg["volume"]["local"]["backend"] == "vfs"
    assert cfg["metadata"]["backend"] == "sqlite"
    assert cfg["etcd"] is None and cfg["redis"] is None


def test_backend_ai_config_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sp.toml"
    path.write_text(BAI_STYLE)
    cfg = load_config(path, {})
    assert cfg["storage-proxy"]["scandir-limit"] == 500
    assert cfg["storage-proxy"]["session-expire"] == timedelta(days=1)
    assert cfg["storage-proxy"]["max-upload-size"] == 100 * 1024**3
    assert cfg["api"]["client"]["service-addr"] == {"host": "0.0.0.0", "port": 16021}
    assert cfg["api"]["manager"]["secret"] == "manager-secret"
    assert cfg["volume"]["vol1"] == {
        "backend": "vfs",
        "path": "/srv/vol1",
        "fsprefix": ".",
        "options": {},
    }
    assert cfg["etcd"]["addr"] == {"host": "127.0.0.1", "port": 2379}


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "sp.toml"
    path.write_text(BAI_STYLE)
    env = {
        "STORAGE_PROXY_API__MANAGER__SECRET": "from-env-secret",
        "STORAGE_PROXY_API__MANAGER__SERVICE_ADDR__PORT": "7777",
        "STORAGE_PROXY_STORAGE_PROXY__SCANDIR_LIMIT": "42",
        "STORAGE_PROXY_VOLUME__VOL1__PATH": "/srv/elsewhere",
        "UNRELATED": "x",
    }
    cfg = load_config(path, env)
    assert cfg["api"]["manager"]["secret"] == "from-env-secret"
    assert cfg["api"]["manager"]["service-addr"]["port"] == 7777
    assert cfg["storage-proxy"]["scandir-limit"] == 42
    assert cfg["volume"]["vol1"]["path"] == "/srv/elsewhere"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "sp.toml"
    path.write_text(BAI_STYLE)
    cfg = load_config(None, {"STORAGE_PROXY_CONFIG": str(path)})
    assert cfg["_source"] == str(path)
    assert "vol1" in cfg["volume"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"storage-proxy": {"scandir-limit": "lots"}}, "storage-proxy.scandir-limit"),
        ({"storage-proxy": {"no-such-key": 1}}, "storage-proxy.no-such-key"),
        ({"api": {"manager": {"service-addr": {"port": "x"}}}}, "api.manager.service-addr.port"),
        ({"api": {"client": {"service-addr": {"port": 70000}}}}, "api.client.service-addr.port"),
        ({"volume": {"v": {"path": "/x"}}}, "volume.v.backend"),
        ({"storage-proxy": {"session-expire": "soon"}}, "storage-proxy.session-expire"),
        ({"bogus-section": {}}, "bogus-section"),
        ({"logging": {"level": "LOUD"}}, "logging.level"),
    ],
)
def test_invalid_config_names_the_key(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate(raw)
    assert expected in str(exc.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[storage-proxy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("512k", 512 << 10),
        ("100m", 100 << 20),
        ("1.5g", 3 << 29),
        ("64Mi", 64 << 20),
        ("2TiB", 2 << 40),
        (17, 17),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h30m", 5400), ("1d", 86400), ("90", 90), (2.5, 2.5)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "soon", "10 parsecs", "5x", True])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = conf_dir / "sp.toml"
    path.write_text(
        '[storage-proxy]\ndata-dir = "./data"\n[volume.v]\nbackend = "vfs"\npath = "vols/v"\n'
    )
    cfg = load_config(path, {})
    assert cfg["storage-proxy"]["data-dir"] == str(conf_dir / "data")
    assert cfg["volume"]["v"]["path"] == str(conf_dir / "vols" / "v")
    assert cfg["metadata"]["path"] == str(conf_dir / "data" / "metadata.sqlite3")


def test_redis_section_as_url_quotes_the_password() -> None:
    from storage_proxy.infra.redis import redis_url

    cfg = {"addr": {"host": "10.0.0.5", "port": 6380}, "password": "p@ss/word", "db": 2}
    assert redis_url(cfg) == "redis://:p%40ss%2Fword@10.0.0.5:6380/2"
    assert redis_url({"addr": {"host": "h", "port": 1}}) == "redis://h:1/0"
