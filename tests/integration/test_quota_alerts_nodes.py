"""Quota alerts across nodes (two root contexts sharing one SQLite store and one Redis): a crossing
both see is announced once — one webhook POST, one audit line — and reaches the event listeners
of both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis_fixtures import RedisServer, node_config
from webhook_fixtures import Webhook

from helpers import new_vfid
from storage_proxy.context import build_root_context


async def test_a_crossing_seen_by_two_nodes_is_announced_once(
    tmp_path: Path, redis_server: RedisServer, webhook: Webhook
) -> None:
    url, posted = webhook
    quota = {"alert-thresholds": [0.5], "alert-webhook": url}
    a = await build_root_context(node_config(tmp_path, redis_server.port, "node-a", quota=quota))
    b = await build_root_context(node_config(tmp_path, redis_server.port, "node-b", quota=quota))
    try:
        vfid = new_vfid()
        qsid = str(vfid.quota_scope_id)
        async with (
            a.services.quotas.events() as at_a,
            b.services.quotas.events() as at_b,
        ):
            # both nodes see the scope at 60 % of its limit, at the same moment
            a.services.quotas.alerts.observe("vol1", "scope", qsid, 600, 1000)
            b.services.quotas.alerts.observe("vol1", "scope", qsid, 600, 1000)
            frames = await asyncio.wait_for(asyncio.gather(at_a.next_frame(), at_b.next_frame()), 5)
            assert all(b"event: quota-threshold" in f and qsid.encode() in f for f in frames)
            async with asyncio.timeout(5):
                while not posted:  # noqa: ASYNC110 - the webhook is posted by a task
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # time for a second announcement, were there one
            assert len(posted) == 1 and posted[0]["threshold"] == 0.5
            for stream in (at_a, at_b):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(stream.next_frame(), 0.3)
    finally:
        await a.close()
        await b.close()
