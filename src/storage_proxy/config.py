"""Configuration: a TOML file (Backend.AI storage-proxy key layout), validated with defaults.

Order of precedence: embedded defaults < the TOML file < ``STORAGE_PROXY_*`` environment variables.
An environment variable names a key path with ``__`` between levels and ``_`` for ``-``:
``STORAGE_PROXY_API__MANAGER__SECRET``, ``STORAGE_PROXY_STORAGE_PROXY__NODE_ID``,
``STORAGE_PROXY_VOLUME__LOCAL__PATH``.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trafaret as t

from .core.dialect import DEFAULT_DIALECT, Dialect
from .core.errors import ConfigError
from .core.units import BinarySize, Duration

ENV_PREFIX = "STORAGE_PROXY_"
#: Variables with the prefix that are not config keys: the config file's name, the client
#: command's URL and token (often exported in the shell that starts the daemon), test settings.
_NOT_KEYS = ("CONFIG", "URL", "TOKEN")
_NOT_KEY_PREFIXES = ("TEST_",)
DEFAULT_CLIENT_PORT = 6021
DEFAULT_MANAGER_PORT = 6022
DEFAULT_VOLUME_NAME = "local"


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "storage-proxy")


def _host_port(default_port: int) -> t.Trafaret:
    """``{ host = "…", port = … }`` as in Backend.AI, or a ``"host:port"`` string."""

    def from_string(value: str) -> dict[str, Any]:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise t.DataError("expected 'host:port'")
        return {"host": host.strip("[]"), "port": port}

    table = t.Dict(
        {
            t.Key("host", default="127.0.0.1"): t.String(allow_blank=True),
            t.Key("port", default=default_port): t.ToInt(gte=0, lte=65535),
        }
    )
    return table | (t.String() & t.Call(from_string) & table)


def _listener(default_port: int, *, with_secret: bool) -> t.Dict:
    keys: dict[t.Key, t.Trafaret] = {
        t.Key("service-addr", default={"host": "127.0.0.1", "port": default_port}): _host_port(
            default_port
        ),
        t.Key("ssl-enabled", default=False): t.ToBool,
        t.Key("ssl-cert", default=None): t.Null | t.String(),
        t.Key("ssl-privkey", default=None): t.Null | t.String(),
    }
    if with_secret:
        # Backend.AI sends this value in X-BackendAI-Storage-Auth-Token; generated when absent.
        keys[t.Key("secret", default=None)] = t.Null | t.String(min_length=8)
        keys[t.Key("internal-addr", default=None)] = t.Null | _host_port(6023)
        # Which Backend.AI release the manager API answers like (core.dialect).
        keys[t.Key("compat", default=DEFAULT_DIALECT.value)] = t.Enum(*(d.value for d in Dialect))
    return t.Dict(keys)


_storage_proxy_section = t.Dict(
    {
        t.Key("node-id", default=None): t.Null | t.String(),
        t.Key("data-dir", default=None): t.Null | t.String(),
        # Signs the client session tokens (JWT HS256); generated when absent.
        t.Key("secret", default=None): t.Null | t.String(min_length=8),
        t.Key("session-expire", default="1d"): Duration(),
        # User tokens minted by POST /token and `storage-proxy token issue`: default and cap.
        t.Key("user-token-expire", default="1h"): Duration(),
        t.Key("user-token-max-expire", default="7d"): Duration(),
        # Longest lifetime of a signed download link made through the file API (the web UI).
        t.Key("download-link-max-expire", default="7d"): Duration(),
        t.Key("scandir-limit", default=1000): t.ToInt(gte=0),
        t.Key("max-upload-size", default="100g"): BinarySize(),
        t.Key("shutdown-timeout", default="30s"): Duration(),
        t.Key("scan-workers", default=None): t.Null | t.ToInt(gte=0, lte=64),
        # Deepest directory tree a copy (snapshot, clone, restore) or a zip download goes into.
        t.Key("max-tree-depth", default=1024): t.ToInt(gte=16, lte=100000),
        # Threads for blocking file work (opens, stats, reads, writes), per worker process.
        t.Key("io-threads", default=32): t.ToInt(gte=2, lte=1024),
        # Threads per worker that relay large reads of an object store reached over plain HTTP
        # straight from its socket to the client's (splice, no copy into the daemon); 0: such
        # reads are streamed through the event loop.
        t.Key("relay-threads", default=8): t.ToInt(gte=0, lte=1024),
        # Answer plain small-file downloads (GET /download?token=…) ahead of aiohttp's request
        # machinery, with the same rules and answer (api/client/fastlane.py); false: aiohttp's.
        t.Key("fast-lane", default=True): t.ToBool(),
        # Costly operations (directory listings, archives) one caller may run at once.
        t.Key("costly-per-caller", default=4): t.ToInt(gte=1, lte=1024),
        # How user paths are resolved below a vfolder: "auto" (the kernel's openat2 with
        # RESOLVE_BENEATH where it has it) or "walk" (an O_NOFOLLOW walk, one level at a time).
        t.Key("path-resolution", default="auto"): t.Enum("auto", "walk"),
        # A transfer whose client reads or sends nothing for this long is dropped.
        t.Key("transfer-idle-timeout", default="60s"): Duration(),
        # A connection that has not sent a complete request head within this time is closed
        # (also how long an idle keep-alive connection stays open).
        t.Key("request-header-timeout", default="30s"): Duration(),
        t.Key("num-proc", default=None): t.Null | t.ToInt(gte=1),
        t.Key("pid-file", default=None): t.Null | t.String(),
        t.Key("event-loop", default="uvloop"): t.Enum("asyncio", "uvloop"),
        t.Key("ipc-base-path", default=None): t.Null | t.String(),
        t.Key("user", default=None): t.Null | t.Int | t.String(),
        t.Key("group", default=None): t.Null | t.Int | t.String(),
        t.Key("aiomonitor-termui-port", default=None): t.Null | t.ToInt,
        t.Key("aiomonitor-port", default=None): t.Null | t.ToInt,
        t.Key("aiomonitor-webui-port", default=None): t.Null | t.ToInt,
        t.Key("use-watcher", default=False): t.ToBool,
        t.Key("use-experimental-redis-event-dispatcher", default=False): t.ToBool,
    }
)

_volume = t.Dict(
    {
        t.Key("backend"): t.String(),
        t.Key("path"): t.String(),
        t.Key("fsprefix", default="."): t.String(allow_blank=True),
        t.Key("options", default=None): t.Null | t.Mapping(t.String(), t.Any()),
    }
)

_etcd = t.Dict(
    {
        t.Key("namespace", default="local"): t.String(),
        t.Key("addr", default={"host": "127.0.0.1", "port": 2379}): _host_port(2379),
        t.Key("user", default=""): t.String(allow_blank=True),
        t.Key("password", default=""): t.String(allow_blank=True),
        # Keys live under <prefix>/<namespace>/ (see storage_proxy.infra for the layout).
        t.Key("prefix", default="/storage-proxy"): t.Regexp(r"^/[\w.-]+(/[\w.-]+)*$"),
        # Apply changes of the shared config in etcd (e.g. a new volume) without a restart.
        t.Key("watch", default=True): t.ToBool,
        # Register this node under nodes/<node-id> with a lease of this many seconds.
        t.Key("register-node", default=True): t.ToBool,
        t.Key("node-ttl", default=10): t.ToInt(gte=1, lte=3600),
        # URLs a manager uses to reach this node; default: from api.*.service-addr.
        t.Key("announce-client", default=None): t.Null | t.String(),
        t.Key("announce-manager", default=None): t.Null | t.String(),
    }
)

_redis = t.Dict(
    {
        t.Key("addr", default={"host": "127.0.0.1", "port": 6379}): _host_port(6379),
        t.Key("password", default=None): t.Null | t.String(allow_blank=True),
        t.Key("db", default=0): t.ToInt(gte=0),
        # Seconds a connection attempt or a command may take before Redis counts as away.
        t.Key("timeout", default=1.0): t.ToFloat(gt=0, lte=30),
    }
).allow_extra("*")

_metadata = t.Dict(
    {
        t.Key("backend", default="sqlite"): t.Enum("sqlite", "etcd"),
        t.Key("path", default=None): t.Null | t.String(),
    }
)

_logging = t.Dict(
    {
        t.Key("level", default="INFO"): t.Enum(
            "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"
        ),
        t.Key("drivers", default=["console"]): t.List(
            t.Enum("console", "file", "logstash", "graylog")
        ),
        t.Key("format", default="text"): t.Enum("text", "json"),
        t.Key("console", default={}): t.Mapping(t.String(), t.Any()),
        t.Key("file", default=None): t.Null | t.Mapping(t.String(), t.Any()),
    }
).allow_extra("*")

_debug = t.Dict(
    {
        t.Key("enabled", default=False): t.ToBool,
        t.Key("asyncio", default=False): t.ToBool,
        t.Key("enhanced-aiomonitor-task-info", default=False): t.ToBool,
        t.Key("log-events", default=False): t.ToBool,
    }
).allow_extra("*")

# Signed upload/download locations (Flyte data-proxy style); see services/dataproxy.py.
_dataproxy = t.Dict(
    {
        # Which volume serves signed locations; default: the first s3 volume, else the first.
        t.Key("volume", default=None): t.Null | t.String(),
        t.Key("storage-prefix", default="dataproxy"): t.Regexp(r"^[\w.-]+(/[\w.-]+)*$"),
        # Base URL of the client API in signed URLs of POSIX volumes; default: its service-addr.
        t.Key("client-url", default=None): t.Null | t.String(),
        t.Key("upload", default={}): t.Dict(
            {
                t.Key("max-expires-in", default="1h"): Duration(),
                t.Key("max-size", default="100Mi"): BinarySize(),
                t.Key("default-filename-length", default=20): t.ToInt(gte=1, lte=200),
            }
        ),
        t.Key("download", default={}): t.Dict({t.Key("max-expires-in", default="1h"): Duration()}),
    }
)

# Background tasks and periodic jobs (services/bgtasks.py, services/jobs/); "0" disables a job.
_jobs = t.Dict(
    {
        t.Key("usage-scan-interval", default="5m"): Duration(),
        t.Key("orphan-scan-interval", default="1h"): Duration(),
        t.Key("trash-purge-interval", default="10m"): Duration(),
        # How long a deleted vfolder stays in the volume's trash before it is purged.
        t.Key("trash-grace", default="1d"): Duration(),
        t.Key("retention-interval", default="1h"): Duration(),
        # Report what retention would delete, delete nothing.
        t.Key("retention-dry-run", default=False): t.ToBool,
        t.Key("scrub-interval", default="7d"): Duration(),
        # How often snapshot policies are looked at (a policy's "every" is kept to this grain).
        t.Key("snapshot-policies-interval", default="1m"): Duration(),
        # A job's lease in the metadata store lasts this long unless its runner renews it.
        t.Key("lease-ttl", default="1m"): Duration(),
        # Running tasks touch their row this often; one silent for bgtask-stale-after is dead.
        t.Key("bgtask-heartbeat", default="5s"): Duration(),
        t.Key("bgtask-stale-after", default="1m"): Duration(),
        # Volume name -> days after which files (by mtime) are deleted; per vfolder: the store.
        t.Key("retention", default={}): t.Mapping(t.Regexp(r"^[\w.-]+$"), t.ToFloat(gte=0)),
    }
)

# Caches shared through Redis (infra/cache.py); used only when [redis] is configured.
_cache = t.Dict(
    {
        t.Key("enabled", default=True): t.ToBool,
        # Redis copies of vfolder records, ACLs and quota limits.  Changes invalidate them on
        # every node at once; the lifetime only bounds what a change made behind the daemons'
        # backs (or during a Redis outage) can leave stale.
        t.Key("ttl", default="10m"): Duration(),
        # Copies inside each process (no round trip at all), dropped on every invalidation.
        t.Key("local-ttl", default="30s"): Duration(),
        t.Key("local-max-entries", default=100_000): t.ToInt(gte=1),
        # Vfolder usage figures (a tree walk each); the usage-scan job refreshes them.
        t.Key("usage-ttl", default="1m"): Duration(),
    }
)

# The audit log (services/audit.py): one JSON line per file or vfolder operation.
_audit = t.Dict(
    {
        # A file (default: <data-dir>/audit.log; reopened when logrotate moves it), "stdout",
        # or "none" (recent entries are then kept in memory for GET /folder/audit).
        t.Key("sink", default=None): t.Null | t.String(),
    }
)


def _ratio_list(value: Any) -> list[float]:
    items = t.List(t.ToFloat(gt=0, lte=10), min_length=1, max_length=16).check(value)
    return sorted(set(items))


# Quota alerts (services/quotas.py): thresholds as fractions of a limit, an optional webhook.
_quota = t.Dict(
    {
        t.Key("alert-thresholds", default=[0.8, 0.95, 1.0]): t.Call(_ratio_list),
        t.Key("alert-webhook", default=None): t.Null | t.URL,
    }
)

config_schema = t.Dict(
    {
        t.Key("storage-proxy", default={}): _storage_proxy_section,
        t.Key("api", default={}): t.Dict(
            {
                t.Key("client", default={}): _listener(DEFAULT_CLIENT_PORT, with_secret=False),
                t.Key("manager", default={}): _listener(DEFAULT_MANAGER_PORT, with_secret=True),
            }
        ),
        t.Key("volume", default=None): t.Null | t.Mapping(t.Regexp(r"^[\w.-]+$"), _volume),
        t.Key("etcd", default=None): t.Null | _etcd,
        t.Key("redis", default=None): t.Null | _redis,
        t.Key("metadata", default={}): _metadata,
        t.Key("logging", default={}): _logging,
        t.Key("debug", default={}): _debug,
        # The Delta Lake S3 view inside the daemon; its own schema (deltaview.config) checks it.
        t.Key("delta-view", default=None): t.Null | t.Mapping(t.String(), t.Any()),
        t.Key("dataproxy", default={}): _dataproxy,
        t.Key("jobs", default={}): _jobs,
        t.Key("cache", default={}): _cache,
        t.Key("audit", default={}): _audit,
        t.Key("quota", default={}): _quota,
    }
)


_TYPE_MISMATCH = ("value should be None", "value is not a dict", "value is not a string")


def _flatten_errors(err: Any, prefix: str = "") -> list[str]:
    """Turn trafaret's nested error dict into ``dotted.key: message`` lines.

    Integer keys are the branches of an ``a | b`` alternative: branches that failed only because
    the value had the other shape are dropped, so the message speaks of the shape that was meant.
    """
    if isinstance(err, Mapping):
        if err and all(isinstance(k, int) for k in err):
            branches = [_flatten_errors(sub, prefix) for sub in err.values()]
            meant = [
                b for b in branches if not all(any(tm in ln for tm in _TYPE_MISMATCH) for ln in b)
            ]
            chosen = meant or branches
            return [line for branch in chosen for line in branch]
        lines: list[str] = []
        for key, sub in err.items():
            if isinstance(sub, Mapping) and set(sub) <= {"key", "value"}:
                # a table of named entries ([volume.NAME]): speak of the entry, not key/value
                if "key" in sub:
                    lines.extend(_flatten_errors(sub["key"], f"{prefix}.{key} (name)"))
                if "value" in sub:
                    lines.extend(_flatten_errors(sub["value"], f"{prefix}.{key}"))
                continue
            lines.extend(_flatten_errors(sub, f"{prefix}.{key}" if prefix else str(key)))
        return lines
    where = prefix or "(top level)"
    return [f"{where}: {err}"]


def _normalise_error_text(text: str) -> str:
    return text.replace("is not allowed key", "is not a known key")


def _env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in _NOT_KEYS or rest.startswith(_NOT_KEY_PREFIXES):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = raw
        for i, part in enumerate(path):
            wanted = part.replace("_", "-")
            key = next(
                (k for k in node if k.replace("_", "-").lower() == wanted),
                wanted,
            )
            if i == len(path) - 1:
                node[key] = value
            else:
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    raise ConfigError(f"{name}: {'.'.join(path[: i + 1])} is not a table")
                node = child


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def validate(
    raw: Mapping[str, Any], *, source: str = "config", base_dir: Path | None = None
) -> dict[str, Any]:
    """Check ``raw`` against the schema and fill in defaults; ConfigError names each bad key.

    Relative paths are taken relative to ``base_dir`` (the config file's folder), else the cwd.
    """
    try:
        cfg: dict[str, Any] = config_schema.check(dict(raw))
    except t.DataError as e:
        lines = _flatten_errors(e.as_dict(value=True))
        detail = "\n".join(f"  {_normalise_error_text(line)}" for line in lines)
        raise ConfigError(f"{source}: invalid configuration:\n{detail}") from None
    return _fill_derived_defaults(cfg, base_dir or Path.cwd())


def _fill_derived_defaults(cfg: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))

    sp = cfg["storage-proxy"]
    sp["data-dir"] = absolute(sp["data-dir"] or default_data_dir())
    if not sp["node-id"]:
        sp["node-id"] = f"storage-proxy-{socket.gethostname()}"
    if sp["scan-workers"] is None:
        sp["scan-workers"] = min(os.cpu_count() or 1, 4)
    if cfg["volume"] is None:
        cfg["volume"] = {
            DEFAULT_VOLUME_NAME: {
                "backend": "vfs",
                "path": os.path.join(sp["data-dir"], "volumes", DEFAULT_VOLUME_NAME),
                "fsprefix": ".",
                "options": None,
            }
        }
    for vol in cfg["volume"].values():
        vol["options"] = dict(vol["options"] or {})
        vol["path"] = absolute(vol["path"])
    for name in cfg["jobs"]["retention"]:
        if name not in cfg["volume"]:
            raise ConfigError(f"jobs.retention.{name}: no volume named {name!r} is configured")
    if cfg["metadata"]["path"] is None:
        cfg["metadata"]["path"] = os.path.join(sp["data-dir"], "metadata.sqlite3")
    else:
        cfg["metadata"]["path"] = absolute(cfg["metadata"]["path"])
    for listener in cfg["api"].values():
        for key in ("ssl-cert", "ssl-privkey"):
            if listener[key]:
                listener[key] = absolute(listener[key])
    return cfg


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read, override from the environment, and validate. ``path=None`` means embedded defaults."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(environ[ENV_PREFIX + "CONFIG"])
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    _env_overrides(raw, environ)
    cfg = validate(
        raw,
        source=str(path) if path else "embedded defaults",
        base_dir=path.resolve().parent if path else None,
    )
    cfg["_source"] = str(path) if path else None
    return cfg
