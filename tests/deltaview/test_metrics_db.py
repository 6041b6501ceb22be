"""Prometheus metrics on metricsPort, and the SQLite credential and partition-rule store."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ALICE, CAROL, client
from redis_fixtures import RedisServer

from storage_proxy.deltaview.config import Credential
from storage_proxy.deltaview.db import Database


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    out = {}
    for line in text.splitlines():
        if m := re.match(r"^(\w+(?:\{[^}]*\})?) ([\d.e+-]+)$", line):
            out[m.group(1)] = float(m.group(2))
    return out


def test_metrics(make_view: Any) -> None:
    v = make_view()
    alice, carol = client(v.endpoint, ALICE), client(v.endpoint, CAROL)
    keys = [
        o["Key"]
        for o in alice.list_objects_v2(Bucket="datalake", Prefix="sales/region=eu/")["Contents"]
    ]
    alice.get_object(Bucket="datalake", Key=keys[0])["Body"].read()
    carol.list_buckets()
    with pytest.raises(ClientError):
        alice.get_object(Bucket="datalake", Key=keys[0].replace("region=eu", "region=us"))
    assert v.metrics_port
    m = _scrape(v.metrics_port)
    assert m['deltaview_queries_served_total{operation="GetObject"}'] == 2
    assert m['deltaview_queries_served_total{operation="ListObjectsV2"}'] == 1
    assert m["deltaview_queries_proxied_total"] == 1
    assert m["deltaview_unique_users_last_minute"] == 2
    assert m["deltaview_backend_latency_avg_seconds"] > 0
    assert m["deltaview_message_size_avg_bytes"] > 0
    assert m['deltaview_denials_total{reason="partition"}'] == 1


def test_database_credentials_and_per_user_rules(make_view: Any, tmp_path: Path) -> None:
    path = tmp_path / "rules.sqlite3"

    async def seed() -> None:
        db = await Database.open(path)
        await db.add_credential(Credential("AKIDBOB00001", "bob-secret", "bob"))
        await db.add_rule("bob", "sales", {"region": "us"})
        await db.add_rule("alice", "events", {})
        await db.close()

    asyncio.run(seed())
    v = make_view(databaseEnabled=True, database={"path": str(path)})
    bob = client(v.endpoint, ("AKIDBOB00001", "bob-secret", "bob"))
    regions = {
        o["Key"].split("/")[1]
        for o in bob.list_objects_v2(Bucket="datalake", Prefix="sales/region")["Contents"]
    }
    assert regions == {"region=eu", "region=us"}  # static rule for everyone + bob's grant
    alice = client(v.endpoint, ALICE)
    regions = {
        o["Key"].split("/")[1]
        for o in alice.list_objects_v2(Bucket="datalake", Prefix="sales/region")["Contents"]
    }
    assert regions == {"region=eu"}
    us = next(
        o["Key"]
        for o in bob.list_objects_v2(Bucket="datalake", Prefix="sales/region=us/")["Contents"]
    )
    assert bob.get_object(Bucket="datalake", Key=us)["Body"].read(4) == b"PAR1"
    with pytest.raises(ClientError):
        alice.get_object(Bucket="datalake", Key=us)


def test_database_off_ignores_database_credentials(make_view: Any, tmp_path: Path) -> None:
    path = tmp_path / "rules.sqlite3"

    async def seed() -> None:
        db = await Database.open(path)
        await db.add_credential(Credential("AKIDBOB00001", "bob-secret", "bob"))
        await db.close()

    asyncio.run(seed())
    v = make_view(databaseEnabled=False, database={"path": str(path)})
    with pytest.raises(ClientError) as e:
        client(v.endpoint, ("AKIDBOB00001", "bob-secret", "bob")).list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_unique_users_are_counted_across_nodes_through_redis(
    make_view: Any, redis_server: RedisServer
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    one, two = make_view(redisUrl=url), make_view(redisUrl=url)
    alone = make_view()  # no Redis: counts only what it saw itself
    client(one.endpoint, ALICE).list_buckets()
    client(two.endpoint, CAROL).list_buckets()
    client(alone.endpoint, ALICE).list_buckets()
    assert one.metrics_port and two.metrics_port and alone.metrics_port
    users = "deltaview_unique_users_last_minute"
    deadline = time.monotonic() + 5  # each node writes its sightings to Redis in the background
    while _scrape(one.metrics_port)[users] != 2 or _scrape(two.metrics_port)[users] != 2:
        assert time.monotonic() < deadline, "the nodes never counted each other's users"
        time.sleep(0.02)
    assert _scrape(alone.metrics_port)[users] == 1
    redis_server.stop()  # Redis away: each node falls back to its own count
    assert _scrape(one.metrics_port)["deltaview_unique_users_last_minute"] == 1
