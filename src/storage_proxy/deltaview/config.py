"""One schema for the view, used by ``config.json`` (standalone) and the daemon's ``[delta-view]``.

Keys are camelCase as in ``config.json``; kebab-case (``table-mapping``) is accepted too so the TOML
section reads like the rest of the daemon's config. ``PROXY_*`` environment variables override keys
of the standalone file: ``PROXY_PORT``, ``PROXY_READ_ONLY``, ``PROXY_TABLE_MAPPING`` (JSON),
``PROXY_S3_ENDPOINT`` … (camelCase → UPPER_SNAKE, ``s3.*`` as ``PROXY_S3_*``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trafaret as t

from ..core.errors import ConfigError

ENV_PREFIX = "PROXY_"
BUCKET = "datalake"

PartitionMap = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str
    user: str


@dataclass(frozen=True)
class S3Backend:
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


@dataclass(frozen=True)
class TableLocation:
    bucket: str
    prefix: str  # "" or ends with "/"


@dataclass(frozen=True)
class SharingRecipient:
    token: str
    user: str
    expires: datetime


@dataclass(frozen=True)
class SharingConfig:
    """The Delta Sharing server on the view's listener (``/delta-sharing/``)."""

    enabled: bool = False
    #: share → schema → table aliases (of tableMapping)
    shares: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    recipients: tuple[SharingRecipient, ...] = ()
    file_urls: str = "presigned"  # or "proxy": the view serves the files itself
    url_expiry: int = 900
    url_secret: str | None = None  # signs proxy file URLs (set it alike on every node)


@dataclass(frozen=True)
class DeltaViewConfig:
    host: str = "127.0.0.1"
    port: int = 18080
    metrics_port: int | None = 9090
    table_mapping: dict[str, TableLocation] = field(default_factory=dict)
    read_only: bool = True
    get_mode: str = "proxy"
    proxy_partial: bool = False
    presign_expiry: int = 60
    allowed_partitions: dict[str, list[PartitionMap]] = field(default_factory=dict)
    credentials: tuple[Credential, ...] = ()
    database_enabled: bool = False
    database_path: str = "deltaview.sqlite3"
    anonymous_user: str | None = None
    s3: S3Backend = S3Backend()
    log_check_interval: float = 1.0
    auth_cache_ttl: float = 60.0
    max_clock_skew: float = 900.0
    redis_url: str | None = None  # distinct-user counts across nodes (redis://host:port/db)
    log_mode: str = "filtered"  # or "passthrough"
    log_cache_bytes: int = 256 * 1024**2
    redirect_signing: str = "auto"  # or "plain"
    sharing: SharingConfig = SharingConfig()


def _s3_url(value: str) -> TableLocation:
    m = re.fullmatch(r"s3a?://([a-z0-9][a-z0-9.\-]{1,62})(?:/(.*))?", value)
    if not m:
        raise t.DataError("expected s3://bucket/prefix")
    prefix = (m.group(2) or "").strip("/")
    return TableLocation(m.group(1), prefix + "/" if prefix else "")


def _instant(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise t.DataError("expected an ISO 8601 time, e.g. 2030-01-01T00:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


_alias = t.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$") & (
    lambda m: m if isinstance(m, str) else m.group(0)
)
_values = (t.String(allow_blank=True) | t.Int | t.List(t.String(allow_blank=True) | t.Int)) & (
    lambda v: tuple(str(x) for x in (v if isinstance(v, list) else [v]))
)
_partition_map = t.Mapping(t.String(), _values)

_database = t.Dict(
    {
        t.Key("driver", default="sqlite"): t.Enum("sqlite"),
        t.Key("path", default="deltaview.sqlite3"): t.String(),
    }
)

schema = t.Dict(
    {
        t.Key("host", default="127.0.0.1"): t.String(),
        t.Key("port", default=18080): t.ToInt(gte=0, lte=65535),
        t.Key("metricsPort", default=9090): t.Null | t.ToInt(gte=0, lte=65535),
        t.Key("tableMapping", default={}): t.Mapping(_alias, t.String() & t.Call(_s3_url)),
        t.Key("readOnly", default=True): t.ToBool,
        t.Key("getMode", default="proxy"): t.Enum("proxy", "presignedUrl"),
        t.Key("proxyPartial", default=False): t.ToBool,
        t.Key("presignExpiry", default=60): t.ToInt(gte=1, lte=3600),
        t.Key("allowedPartitions", default={}): t.Mapping(_alias, t.List(_partition_map)),
        t.Key("credentials", default=[]): t.List(
            t.Dict(
                {
                    t.Key("accessKeyId"): t.String(min_length=3),
                    t.Key("secretAccessKey"): t.String(min_length=1),
                    t.Key("user"): t.String(min_length=1),
                }
            )
        ),
        t.Key("databaseEnabled", default=False): t.ToBool,
        t.Key("database", default={}): (t.String() & (lambda p: {"path": p})) | _database,
        t.Key("anonymousUser", default=None): t.Null | t.String(min_length=1),
        t.Key("s3", default={}): t.Dict(
            {
                t.Key("endpoint", default=None): t.Null | t.URL,
                t.Key("region", default=None): t.Null | t.String(),
                t.Key("accessKeyId", default=None): t.Null | t.String(),
                t.Key("secretAccessKey", default=None): t.Null | t.String(),
            }
        ),
        t.Key("logCheckInterval", default=1.0): t.ToFloat(gte=0),
        t.Key("authCacheTtl", default=60.0): t.ToFloat(gte=0),
        t.Key("maxClockSkew", default=900.0): t.ToFloat(gte=1),
        t.Key("redisUrl", default=None): t.Null | t.Regexp(r"^rediss?://\S+$"),
        t.Key("logMode", default="filtered"): t.Enum("filtered", "passthrough"),
        t.Key("logCacheBytes", default=256 * 1024**2): t.ToInt(gte=0),
        t.Key("redirectSigning", default="auto"): t.Enum("auto", "plain"),
        t.Key("sharing", default={}): t.Dict(
            {
                t.Key("enabled", default=False): t.ToBool,
                t.Key("shares", default={}): t.Mapping(_alias, t.Mapping(_alias, t.List(_alias))),
                t.Key("recipients", default=[]): t.List(
                    t.Dict(
                        {
                            t.Key("token"): t.String(min_length=16),
                            t.Key("user"): t.String(min_length=1),
                            t.Key("expires"): t.String() & t.Call(_instant),
                        }
                    )
                ),
                t.Key("fileUrls", default="presigned"): t.Enum("presigned", "proxy"),
                t.Key("urlExpiry", default=900): t.ToInt(gte=1, lte=7 * 24 * 3600),
                t.Key("urlSecret", default=None): t.Null | t.String(min_length=16),
            }
        ),
    }
)


def _sharing(c: Mapping[str, Any], tables: Mapping[str, TableLocation]) -> SharingConfig:
    unknown = sorted(
        {a for schemas in c["shares"].values() for aliases in schemas.values() for a in aliases}
        - set(tables)
    )
    if unknown:
        raise ConfigError(f"delta-view: sharing.shares names unknown tables: {unknown}")
    return SharingConfig(
        enabled=c["enabled"],
        shares={
            share: {schema: tuple(aliases) for schema, aliases in schemas.items()}
            for share, schemas in c["shares"].items()
        },
        recipients=tuple(
            SharingRecipient(r["token"], r["user"], r["expires"]) for r in c["recipients"]
        ),
        file_urls=c["fileUrls"],
        url_expiry=c["urlExpiry"],
        url_secret=c["urlSecret"],
    )


def _camel(key: str) -> str:
    head, *rest = key.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _normalise(value: Any, depth: int = 0) -> Any:
    """kebab-case keys → camelCase for the fixed parts of the schema (not aliases or columns)."""
    if not isinstance(value, Mapping):
        return value
    free = {"tableMapping", "allowedPartitions", "shares"}
    return {
        _camel(k): (v if _camel(k) in free else _normalise(v, depth + 1)) for k, v in value.items()
    }


def _flatten(err: Any, prefix: str = "") -> list[str]:
    if isinstance(err, Mapping):
        out: list[str] = []
        for k, v in err.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [f"{prefix or '(top level)'}: {err}"]


def validate(raw: Mapping[str, Any]) -> DeltaViewConfig:
    """Check a config mapping (``config.json`` or the TOML ``[delta-view]`` section)."""
    try:
        c = schema.check(_normalise(dict(raw)))
    except t.DataError as e:
        raise ConfigError("delta-view: " + "; ".join(_flatten(e.as_dict()))) from None
    unknown = set(c["allowedPartitions"]) - set(c["tableMapping"])
    if unknown:
        raise ConfigError(f"delta-view: allowedPartitions names unknown tables: {sorted(unknown)}")
    s3 = c["s3"]
    env = os.environ
    return DeltaViewConfig(
        host=c["host"],
        port=c["port"],
        metrics_port=c["metricsPort"],
        table_mapping=dict(c["tableMapping"]),
        read_only=c["readOnly"],
        get_mode=c["getMode"],
        proxy_partial=c["proxyPartial"],
        presign_expiry=c["presignExpiry"],
        allowed_partitions={k: list(v) for k, v in c["allowedPartitions"].items()},
        credentials=tuple(
            Credential(x["accessKeyId"], x["secretAccessKey"], x["user"]) for x in c["credentials"]
        ),
        database_enabled=c["databaseEnabled"],
        database_path=c["database"]["path"],
        anonymous_user=c["anonymousUser"],
        s3=S3Backend(
            endpoint=s3["endpoint"]
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL"),
            region=s3["region"] or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            access_key_id=s3["accessKeyId"],
            secret_access_key=s3["secretAccessKey"],
        ),
        log_check_interval=c["logCheckInterval"],
        auth_cache_ttl=c["authCacheTtl"],
        max_clock_skew=c["maxClockSkew"],
        redis_url=c["redisUrl"],
        log_mode=c["logMode"],
        log_cache_bytes=c["logCacheBytes"],
        redirect_signing=c["redirectSigning"],
        sharing=_sharing(c["sharing"], c["tableMapping"]),
    )


def _env_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _upper_snake(key: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).upper()


def apply_env(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``PROXY_*`` overrides on top of the file's values (JSON-parsed when they parse)."""
    environ = os.environ if environ is None else environ
    out = _normalise(dict(raw))
    for key in schema.keys:
        name = key.name
        if name == "s3":
            sub = dict(out.get("s3") or {})
            for inner in ("endpoint", "region", "accessKeyId", "secretAccessKey"):
                env_name = f"{ENV_PREFIX}S3_{_upper_snake(inner)}"
                if env_name in environ:
                    sub[inner] = environ[env_name]
            out["s3"] = sub
            continue
        env_name = ENV_PREFIX + _upper_snake(name)
        if env_name in environ:
            out[name] = _env_value(environ[env_name])
    return out


def load_json(path: Path | None, environ: Mapping[str, str] | None = None) -> DeltaViewConfig:
    """The standalone ``config.json``, environment overrides applied, validated."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = json.loads(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
    return validate(apply_env(raw, environ))
