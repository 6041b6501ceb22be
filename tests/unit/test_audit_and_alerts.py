"""The audit log (one JSON line per file or vfolder operation, whichever door; denied attempts
too; never a secret; recent entries per vfolder on the manager API) and quota alerts (once per
crossing of each threshold: an SSE event, a webhook POST, an audit line, a gauge)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import MANAGER_SECRET, Daemon, make_config
from webhook_fixtures import Webhook

from helpers import new_vfid
from storage_proxy.api.client import create_client_app
from storage_proxy.api.manager import AUTH_HEADER, create_manager_app
from storage_proxy.context import build_root_context
from storage_proxy.core.types import VFolderID
from storage_proxy.services.quotas import QuotaAlerts

FIELDS = {
    "time", "request_id", "principal", "door", "volume", "vfid", "path", "operation", "bytes",
    "result", "duration_ms", "labels",
}  # fmt: skip


def audit_lines(daemon: Daemon) -> list[dict[str, Any]]:
    path = Path(daemon.ctx.config["storage-proxy"]["data-dir"]) / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(check: Any, within: float = 5.0) -> None:
    """Until ``check()`` holds: the audit file is written by its own thread, webhooks arrive."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling what other threads and tasks write
            await asyncio.sleep(0.02)


def user(daemon: Daemon, sub: str) -> dict[str, str]:
    token = daemon.ctx.tokens.issue_user(sub, [], timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


def files_url(vfid: VFolderID, path: str = "") -> str:
    base = f"/api/v1/vfolders/vol1/{vfid.quota_scope_id}/{vfid.folder_id.hex}"
    return f"{base}/files/{path}" if path else f"{base}/files"


async def owned_vfolder(daemon: Daemon, owner: str, limit: int | None = None) -> VFolderID:
    vfid = new_vfid()
    if limit is not None:
        status, body = await daemon.call(
            "POST",
            "/quota-scope",
            volume="vol1",
            qsid=str(vfid.quota_scope_id),
            options={"limit_bytes": limit},
        )
        assert status == 204, body
    status, body = await daemon.call(
        "POST", "/folder/create", volume="vol1", vfid=str(vfid), owner=owner
    )
    assert status == 204, body
    return vfid


async def test_each_operation_is_one_line_through_every_door(daemon: Daemon) -> None:
    vfid = await owned_vfolder(daemon, "alice")
    alice = user(daemon, "alice")
    c = daemon.client
    resp = await c.put(files_url(vfid, "d/a.txt"), data=b"hello", headers=alice)
    assert resp.status == 201
    resp = await c.get(files_url(vfid, "d/a.txt"), headers=alice)
    assert resp.status == 200 and await resp.read() == b"hello"
    status, _ = await daemon.call(
        "POST", "/folder/file/move", volume="vol1", vfid=str(vfid),
        src_relpath="d/a.txt", dst_relpath="b.txt",
    )  # fmt: skip
    assert status == 204
    resp = await c.delete(files_url(vfid, "b.txt"), headers=user(daemon, "mallory"))
    assert resp.status == 404  # no right at all: nothing to see — and audited
    resp = await c.delete(files_url(vfid, "b.txt"), headers=alice)
    assert resp.status == 204

    def mine() -> list[dict[str, Any]]:
        return [line for line in audit_lines(daemon) if line["vfid"] == str(vfid)]

    await until(lambda: len(mine()) >= 6)
    lines = mine()
    assert [(x["operation"], x["principal"], x["door"], x["result"]) for x in lines] == [
        ("vfolder.create", "manager", "manager", "ok"),
        ("file.write", "user:alice", "client", "ok"),
        ("file.download", "user:alice", "client", "ok"),
        ("file.move", "manager", "manager", "ok"),
        ("file.delete", "user:mallory", "client", "vfolder-not-found"),
        ("file.delete", "user:alice", "client", "ok"),
    ]
    for line in lines:
        assert set(line) >= FIELDS and line["volume"] == "vol1"
        assert line["labels"] == {
            "vfolder_id": str(vfid),
            "backend": "vfs",
            "operation": line["operation"],
        }
        assert line["request_id"]
    assert lines[1]["path"] == "d/a.txt" and lines[1]["bytes"] == 5
    assert lines[3]["destination"] == "b.txt"
    text = (Path(daemon.ctx.config["storage-proxy"]["data-dir"]) / "audit.log").read_text()
    for secret in (alice["Authorization"].split()[1], MANAGER_SECRET):
        assert secret not in text

    status, body = await daemon.call("GET", "/folder/audit", volume="vol1", vfid=str(vfid), limit=2)
    assert status == 200
    assert [e["operation"] for e in body["entries"]] == ["file.delete", "file.delete"]
    assert body["entries"][0]["result"] == "ok"  # newest first


async def test_acl_changes_are_audited(daemon: Daemon) -> None:
    vfid = await owned_vfolder(daemon, "alice")
    status, _ = await daemon.call(
        "POST", "/folder/acl/grant", volume="vol1", vfid=str(vfid),
        principal="user:bob", permission="ro",
    )  # fmt: skip
    assert status == 200

    def grants() -> list[dict[str, Any]]:
        return [x for x in audit_lines(daemon) if x["operation"] == "acl.grant"]

    await until(lambda: len(grants()) == 1)
    [grant] = grants()
    assert grant["vfid"] == str(vfid) and grant["principal"] == "manager"
    assert grant["grantee"] == "user:bob" and grant["permission"] == "ro"


async def test_a_refusal_naming_an_unknown_or_unencodable_volume_is_audited(
    daemon: Daemon,
) -> None:
    vfid = new_vfid()
    for name in ("nosuchvolume", "bad\ud800name"):
        body = json.dumps({"volume": name, "vfid": str(vfid), "relpath": "x"})
        resp = await daemon.manager.post("/folder/file/list", data=body)
        assert resp.status in (400, 404), await resp.text()

    def refused() -> list[dict[str, Any]]:
        return [x for x in audit_lines(daemon) if x["vfid"] == str(vfid)]

    await until(lambda: len(refused()) == 2)
    names = sorted(x["volume"] for x in refused())
    assert names == ["bad\ud800name", "nosuchvolume"]  # the surrogate kept, escaped in the file
    assert all(x["labels"]["backend"] == "" and x["result"] != "ok" for x in refused())


@contextlib.asynccontextmanager
async def alert_daemon(tmp_path: Path, aiohttp_client: Any, webhook: str) -> AsyncIterator[Daemon]:
    cfg = make_config(tmp_path)
    cfg["quota"] = {"alert-thresholds": [0.5, 0.9], "alert-webhook": webhook}
    ctx = await build_root_context(cfg)
    try:
        manager = await aiohttp_client(create_manager_app(ctx.services))
        manager.session.headers[AUTH_HEADER] = MANAGER_SECRET
        client = await aiohttp_client(create_client_app(ctx.services))
        yield Daemon(ctx, manager, client)
    finally:
        await ctx.close()


async def test_quota_alerts_once_per_crossing(
    tmp_path: Path, aiohttp_client: Any, webhook: Webhook
) -> None:
    url, posted = webhook
    async with alert_daemon(tmp_path, aiohttp_client, url) as daemon:
        vfid = await owned_vfolder(daemon, "alice", limit=1000)
        qsid = str(vfid.quota_scope_id)
        frames: list[str] = []
        events = await daemon.manager.get("/events")
        assert events.status == 200 and events.content_type == "text/event-stream"

        async def read() -> None:
            async for raw in events.content:
                frames.append(raw.decode())

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        alice = user(daemon, "alice")
        for name, size in (("a", 400), ("b", 200), ("c", 50), ("d", 300)):  # 40, 60, 65, 95 %
            resp = await daemon.client.put(files_url(vfid, name), data=b"x" * size, headers=alice)
            assert resp.status == 201, await resp.text()
        await until(lambda: len(posted) == 2)
        assert [(p["subject"], p["id"], p["threshold"]) for p in posted] == [
            ("scope", qsid, 0.5),
            ("scope", qsid, 0.9),
        ]
        assert posted[1]["used_bytes"] == 950 and posted[1]["limit_bytes"] == 1000
        await until(lambda: sum("event: quota-threshold" in f for f in frames) == 2)
        data = [json.loads(f[len("data: ") :]) for f in frames if f.startswith("data: ")]
        assert [d["threshold"] for d in data] == [0.5, 0.9]

        def alerts_audited() -> list[dict[str, Any]]:
            return [x for x in audit_lines(daemon) if x["operation"] == "quota.threshold"]

        await until(lambda: len(alerts_audited()) == 2)
        alerts = alerts_audited()
        assert [x["alert"]["threshold"] for x in alerts] == [0.5, 0.9]
        ratio = daemon.ctx.metrics.registry.get_sample_value(
            "storage_proxy_quota_usage_ratio", {"volume": "vol1", "scope": qsid}
        )
        assert ratio == pytest.approx(0.95)

        # below the first threshold again, then across it once more: a new crossing
        resp = await daemon.client.delete(files_url(vfid, "d"), headers=alice)
        resp = await daemon.client.delete(files_url(vfid, "b"), headers=alice)
        status, _ = await daemon.call("GET", "/quota-scope", volume="vol1", qsid=qsid)
        assert status == 200  # looked at: 45 %, re-armed
        resp = await daemon.client.put(files_url(vfid, "e"), data=b"x" * 100, headers=alice)
        assert resp.status == 201
        await until(lambda: len(posted) == 3)
        assert posted[2]["threshold"] == 0.5
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        events.close()


async def test_alerts_with_the_store_and_redis_away_log_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crossing while the claims store and Redis are away is still announced here, and each
    failure is one warning line: no traceback (the soak's Redis outage once left one in a log)."""

    class Away:
        async def acquire_lease(self, *args: Any) -> bool:
            raise ConnectionError("the store is away")

        async def release_lease(self, *args: Any) -> None:
            raise ConnectionError("the store is away")

    class Audit:
        def __init__(self) -> None:
            self.entries: list[Any] = []

        def record(self, entry: Any, result: str) -> None:
            self.entries.append(entry)

    async def publish(message: str) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    audit = Audit()
    alerts = QuotaAlerts(audit, [0.5], claims=Away(), holder="test")  # type: ignore[arg-type]
    alerts.publish = publish
    async with alerts.subscribe() as queue:
        with caplog.at_level("INFO", logger="storage_proxy.services.quotas"):
            alerts.observe("vol1", "scope", "user:1", 60, 100)
            alert = await asyncio.wait_for(queue.get(), 5)
    await alerts.close()
    assert alert.threshold == 0.5 and len(audit.entries) == 1
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert all(r.exc_info is None for r in warnings)
    assert "ConnectionError" in warnings[1].getMessage()
