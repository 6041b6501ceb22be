"""One contract for every MetadataStore: SQLite (embedded) and etcd (shared) pass the same cases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_proxy.core.records import AclEntry, Permission, UploadSession
from storage_proxy.core.snapshot_policy import SnapshotPolicy
from storage_proxy.infra.etcd import EtcdClient
from storage_proxy.metadata.etcd import EtcdMetadataStore
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.metadata.store import MetadataStore


@pytest.fixture(params=["sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    s: MetadataStore
    if request.param == "sqlite":
        s = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    else:
        server = request.getfixturevalue("etcd_server")  # sync, session-scoped: started once
        namespace = request.getfixturevalue("etcd_namespace")
        client = EtcdClient(server.host, server.port, namespace=namespace)
        s = EtcdMetadataStore(client, owns_client=True)
    await s.open()
    yield s
    if isinstance(s, EtcdMetadataStore):
        await s.client.delete_prefix("")
    await s.close()


def _session(sid: str, vfid: str = "qs1/vf1", *, length: int | None = 100, **kw: object):
    now = time.time()
    fields: dict[str, object] = {
        "volume": "vol",
        "relpath": "a/b.bin",
        "offset": 0,
        "created_at": now,
        "expires_at": now + 3600,
        "owner": "alice",
        "metadata": {"filename": "b.bin"},
    }
    fields.update(kw)
    return UploadSession(id=sid, vfid=vfid, length=length, **fields)  # type: ignore[arg-type]


async def test_quota_limits(store: MetadataStore) -> None:
    assert await store.get_quota_limit("vol", "qs") is None
    await store.set_quota_limit("vol", "qs", 1000)
    assert await store.get_quota_limit("vol", "qs") == 1000
    await store.set_quota_limit("vol", "qs", 2000)
    assert await store.get_quota_limit("vol", "qs") == 2000
    assert await store.get_quota_limit("other", "qs") is None
    await store.set_quota_limit("vol", "qs", None)
    assert await store.get_quota_limit("vol", "qs") is None
    await store.delete_quota_scope("vol", "qs")
    assert await store.get_quota_limit("vol", "qs") is None


async def test_vfolder_registry(store: MetadataStore) -> None:
    assert await store.get_vfolder("vol", "u1/a") is None
    await store.register_vfolder("vol", "u1/a", "u1", owner="alice")
    await store.register_vfolder("vol", "u1/b", "u1", owner="g1", kind="group")
    await store.register_vfolder("vol2", "u1/c", "u1")
    rec = await store.get_vfolder("vol", "u1/a")
    assert rec is not None
    assert (rec.quota_scope, rec.owner, rec.kind, rec.limit_bytes) == ("u1", "alice", "user", None)
    assert [r.vfid for r in await store.list_vfolders("vol")] == ["u1/a", "u1/b"]
    assert [r.vfid for r in await store.list_vfolders()] == ["u1/a", "u1/b", "u1/c"]

    await store.update_vfolder("vol", "u1/a", limit_bytes=500)
    await store.update_vfolder("vol", "u1/a", kind="group")
    rec = await store.get_vfolder("vol", "u1/a")
    assert rec is not None and (rec.owner, rec.kind, rec.limit_bytes) == ("alice", "group", 500)
    await store.update_vfolder("vol", "u1/a", owner=None, limit_bytes=None)
    rec = await store.get_vfolder("vol", "u1/a")
    assert rec is not None and (rec.owner, rec.limit_bytes) == (None, None)
    await store.update_vfolder("vol", "missing", owner="x")  # no-op, no error
    assert await store.get_vfolder("vol", "missing") is None


async def test_acl_and_cascade_on_unregister(store: MetadataStore) -> None:
    await store.register_vfolder("vol", "u1/a", "u1")
    await store.set_acl_entry("vol", "u1/a", AclEntry("user", "bob", Permission.RO))
    await store.set_acl_entry("vol", "u1/a", AclEntry("group", "g/1", Permission.RW))
    await store.set_acl_entry("vol", "u1/a", AclEntry("user", "bob", Permission.RWD))
    await store.set_acl_entry("vol", "u1/ab", AclEntry("user", "eve", Permission.RO))
    acl = await store.get_acl("vol", "u1/a")
    assert acl == [
        AclEntry("group", "g/1", Permission.RW),
        AclEntry("user", "bob", Permission.RWD),
    ]
    assert await store.remove_acl_entry("vol", "u1/a", "group", "g/1") is True
    assert await store.remove_acl_entry("vol", "u1/a", "group", "g/1") is False

    await store.put_file_meta("vol", "u1/a", "x/y.txt", {"etag": "1"})
    await store.unregister_vfolder("vol", "u1/a")
    assert await store.get_vfolder("vol", "u1/a") is None
    assert await store.get_acl("vol", "u1/a") == []
    assert await store.get_file_meta("vol", "u1/a", "x/y.txt") is None
    # a vfid that merely starts with the same text is untouched
    assert await store.get_acl("vol", "u1/ab") == [AclEntry("user", "eve", Permission.RO)]


async def test_upload_sessions(store: MetadataStore) -> None:
    s1 = _session("up1", "qs1/vf1", length=100)
    s2 = _session("up2", "qs1/vf2", length=None, offset=30)
    s3 = _session("up3", "qs2/vf1", length=7, volume="other")
    for s in (s1, s2, s3):
        await store.create_upload(s)
    assert await store.get_upload("up1") == s1
    assert await store.get_upload("nope") is None

    await store.update_upload("up2", offset=40, length=None)
    got = await store.get_upload("up2")
    assert got is not None and (got.offset, got.length, got.metadata) == (40, None, s2.metadata)
    await store.update_upload("up1", offset=10, length=100)

    assert [s.id for s in await store.list_uploads()] == ["up1", "up2", "up3"]
    assert [s.id for s in await store.list_uploads(volume="vol")] == ["up1", "up2"]
    assert await store.list_uploads(expired_before=time.time()) == []
    assert [s.id for s in await store.list_uploads(expired_before=time.time() + 7200)] == [
        "up1",
        "up2",
        "up3",
    ]
    # declared length, or the staged offset while the length is deferred
    assert await store.reserved_upload_bytes("vol", "qs1/") == 100 + 40
    assert await store.reserved_upload_bytes("vol", "qs1/vf1") == 100
    assert await store.reserved_upload_bytes("vol", "qs9/") == 0

    await store.delete_upload("up1")
    assert await store.get_upload("up1") is None
    await store.delete_upload("up1")  # idempotent


async def test_create_upload_never_overwrites(store: MetadataStore) -> None:
    original = _session("dup", length=10)
    await store.create_upload(original)
    with pytest.raises(Exception):  # noqa: B017 - sqlite: IntegrityError, etcd: AlreadyExists
        await store.create_upload(_session("dup", length=999, owner="mallory"))
    assert await store.get_upload("dup") == original


async def test_concurrent_create_upload_has_one_winner(store: MetadataStore) -> None:
    attempts = [_session("race", length=i) for i in range(8)]
    results = await asyncio.gather(
        *(store.create_upload(s) for s in attempts), return_exceptions=True
    )
    winners = [a for a, r in zip(attempts, results, strict=True) if r is None]
    assert len(winners) == 1
    assert await store.get_upload("race") == winners[0]


async def test_concurrent_updates_are_not_lost(store: MetadataStore) -> None:
    await store.register_vfolder("vol", "u1/a", "u1")
    await asyncio.gather(
        store.update_vfolder("vol", "u1/a", owner="carol"),
        store.update_vfolder("vol", "u1/a", limit_bytes=42),
        store.update_vfolder("vol", "u1/a", kind="group"),
    )
    rec = await store.get_vfolder("vol", "u1/a")
    assert rec is not None and (rec.owner, rec.limit_bytes, rec.kind) == ("carol", 42, "group")


async def test_file_meta(store: MetadataStore) -> None:
    assert await store.get_file_meta("vol", "u1/a", "d/f.txt") is None
    await store.put_file_meta("vol", "u1/a", "d/f.txt", {"mode": 0o644, "xattr": {"k": "v"}})
    await store.put_file_meta("vol", "u1/a", "d/f.txt", {"mode": 0o600})
    assert await store.get_file_meta("vol", "u1/a", "d/f.txt") == {"mode": 0o600}
    assert await store.get_file_meta("vol", "u1/a", "d") is None
    await store.delete_file_meta("vol", "u1/a", "d/f.txt")
    assert await store.get_file_meta("vol", "u1/a", "d/f.txt") is None


def _task(tid: str, *, status: str = "running", created: float = 0.0, **kw: object):
    from storage_proxy.core.records import BgTaskRecord

    now = created or time.time()
    return BgTaskRecord(
        id=tid,
        kind=str(kw.get("kind", "clone")),
        status=status,
        owner=str(kw.get("owner", "n1/1")),
        created_at=now,
        updated_at=now,
    )


async def test_bgtasks(store: MetadataStore) -> None:
    await store.create_bgtask(_task("t1", created=1.0))
    await store.create_bgtask(_task("t2", created=2.0, kind="scan", status="done"))
    await store.create_bgtask(_task("t3", created=3.0, owner="n2/1"))
    with pytest.raises(Exception):  # noqa: B017 - a duplicate id never overwrites
        await store.create_bgtask(_task("t1", kind="other"))
    got = await store.get_bgtask("t1")
    assert got is not None and got.kind == "clone"
    assert await store.update_bgtask("t1", {"current": 5, "result": {"a": [1]}}) is True
    got = await store.get_bgtask("t1")
    assert got is not None and (got.current, got.result) == (5, {"a": [1]})
    assert await store.update_bgtask("t2", {"message": "x"}, only_if_live=True) is False
    assert await store.update_bgtask("nope", {"message": "x"}) is False
    with pytest.raises(ValueError):
        await store.update_bgtask("t1", {"bogus": 1})
    assert [t.id for t in await store.list_bgtasks()] == ["t3", "t2", "t1"]
    assert [t.id for t in await store.list_bgtasks(limit=1)] == ["t3"]
    assert [t.id for t in await store.list_bgtasks(kind="clone", owner="n1/1")] == ["t1"]
    assert [t.id for t in await store.list_bgtasks(statuses=("done",))] == ["t2"]
    await store.delete_bgtask("t2")
    assert await store.get_bgtask("t2") is None


async def test_job_leases(store: MetadataStore) -> None:
    assert await store.acquire_lease("gc", "a", 10, now=100) is True
    assert await store.acquire_lease("gc", "b", 10, now=105) is False
    assert await store.acquire_lease("gc", "a", 10, now=105) is True  # extend
    assert await store.acquire_lease("gc", "b", 10, now=116) is True  # a's expired
    await store.release_lease("gc", "a", None)  # not a's any more: no effect
    assert await store.acquire_lease("gc", "a", 10, now=117) is False
    await store.release_lease("gc", "b", keep_until=200)
    assert await store.acquire_lease("gc", "a", 10, now=150) is False
    await store.release_lease("gc", "b", None)
    assert await store.acquire_lease("gc", "a", 10, now=150) is True


async def test_concurrent_lease_acquire_has_one_winner(store: MetadataStore) -> None:
    got = await asyncio.gather(*(store.acquire_lease("j", f"h{i}", 60, 0) for i in range(6)))
    assert sum(got) == 1


async def test_vfolder_status_and_retention(store: MetadataStore) -> None:
    await store.create_bgtask(_task("t1"))
    await store.create_bgtask(_task("t2"))
    assert await store.claim_vfolder_status("vol", "u1/a", "cloning", "t1") is None
    assert await store.claim_vfolder_status("vol", "u1/a", "deleting", "t2") == "cloning"
    assert await store.get_vfolder_status("vol", "u1/a") == ("cloning", "t1")
    await store.update_bgtask("t1", {"status": "done"})
    assert await store.get_vfolder_status("vol", "u1/a") is None  # its task is not live
    assert await store.claim_vfolder_status("vol", "u1/a", "deleting", "t2") is None
    await store.release_vfolder_status("t2")
    assert await store.get_vfolder_status("vol", "u1/a") is None

    await store.register_vfolder("vol", "u1/a", "u1")
    await store.set_vfolder_retention("vol", "u1/a", 7)
    await store.set_vfolder_retention("vol", "u1/b", 1.5)
    await store.set_vfolder_retention("vol2", "u1/c", 3)
    assert await store.get_vfolder_retention("vol") == {"u1/a": 7.0, "u1/b": 1.5}
    await store.set_vfolder_retention("vol", "u1/b", None)
    await store.unregister_vfolder("vol", "u1/a")
    assert await store.get_vfolder_retention("vol") == {}


async def test_vfolder_versions_setting(store: MetadataStore) -> None:
    await store.register_vfolder("vol", "u1/a", "u1")
    assert await store.get_vfolder_versions("vol", "u1/a") == 0  # off by default
    await store.set_vfolder_versions("vol", "u1/a", 5)
    await store.set_vfolder_versions("vol2", "u1/a", 2)
    assert await store.get_vfolder_versions("vol", "u1/a") == 5
    assert await store.get_vfolder_versions("vol2", "u1/a") == 2
    await store.set_vfolder_versions("vol2", "u1/a", 0)
    assert await store.get_vfolder_versions("vol2", "u1/a") == 0
    await store.unregister_vfolder("vol", "u1/a")  # the setting goes with the vfolder
    assert await store.get_vfolder_versions("vol", "u1/a") == 0


async def test_snapshot_policies(store: MetadataStore) -> None:
    hourly, daily = SnapshotPolicy(3600, keep_last=24), SnapshotPolicy(86400, 2, keep_daily=7)
    await store.register_vfolder("vol", "user:u1/a", "user:u1")
    assert await store.get_snapshot_policies("vol") == {}
    await store.set_snapshot_policy("vol", "user:u1/a", hourly)  # a vfolder's
    await store.set_snapshot_policy("vol", "user:u1", daily)  # its quota scope's
    await store.set_snapshot_policy("vol2", "user:u1", hourly)
    assert await store.get_snapshot_policies("vol") == {"user:u1/a": hourly, "user:u1": daily}
    await store.set_snapshot_policy("vol", "user:u1/a", daily)  # replaced
    assert (await store.get_snapshot_policies("vol"))["user:u1/a"] == daily
    await store.unregister_vfolder("vol", "user:u1/a")  # the vfolder's goes with it
    assert await store.get_snapshot_policies("vol") == {"user:u1": daily}
    await store.set_snapshot_policy("vol", "user:u1", None)
    assert await store.get_snapshot_policies("vol") == {}
    assert await store.get_snapshot_policies("vol2") == {"user:u1": hourly}


# -- the quota ledger: the same rules on both stores ---------------------------------------------
def _bucket(key: str = "qs1", limit: int = 1000, used: int = 0, scanned_at: float = 0.0):
    from storage_proxy.core.records import QuotaBucket

    return QuotaBucket(key, f"{key}/", limit, used, scanned_at)


async def test_concurrent_reservations_never_pass_the_limit(store: MetadataStore) -> None:
    now = time.time()
    results = await asyncio.gather(
        *(store.reserve("vol", [_bucket()], f"h{i}", 300, "node/1", now, 60) for i in range(8))
    )
    assert sum(r is None for r in results) == 3  # 3 x 300 fit in 1000, the rest are refused
    short = next(r for r in results if r is not None)
    assert short.key == "qs1" and short.remaining == 100
    assert await store.bucket_held("vol", _bucket(), now) == 900


async def test_settled_writes_count_until_a_later_scan(store: MetadataStore) -> None:
    now = time.time()
    assert await store.reserve("vol", [_bucket()], "w", 400, "node/1", now, 60) is None
    await store.settle("vol", "w", 250, now)  # 250 of the 400 were written
    assert await store.bucket_held("vol", _bucket(scanned_at=now - 1), now) == 250
    assert await store.bucket_held("vol", _bucket(scanned_at=now + 1), now) == 0  # scanned since
    assert await store.reserve("vol", [_bucket()], "x", 750, "node/1", now, 60) is None
    assert await store.reserve("vol", [_bucket()], "y", 1, "node/1", now, 60) is not None


async def test_holdings_expire_unless_renewed_and_dead_holders_are_dropped(
    store: MetadataStore,
) -> None:
    now = time.time()
    assert await store.reserve("vol", [_bucket()], "a", 500, "node/1", now, 10) is None
    assert await store.reserve("vol", [_bucket()], "b", 300, "node/2", now, 10) is None
    await store.renew_holdings("node/1", now + 5, 10)
    assert await store.bucket_held("vol", _bucket(), now + 12) == 500  # node/2's expired
    assert await store.ledger_holders("node/") == ["node/1", "node/2"]
    assert await store.drop_holdings("node/1") == 1
    assert await store.bucket_held("vol", _bucket(), now) == 300
    await store.prune_ledger(now, now + 20)
    assert await store.ledger_holders("node/") == []


async def test_uploads_and_reservations_share_one_limit(store: MetadataStore) -> None:
    now = time.time()
    assert await store.create_upload(_session("u1", length=600), [_bucket()], now) is None
    refused = await store.create_upload(_session("u2", length=600), [_bucket()], now)
    assert refused is not None and refused.remaining == 400
    assert await store.get_upload("u2") is None  # nothing recorded
    assert await store.reserve("vol", [_bucket()], "r", 500, "node/1", now, 60) is not None
    deferred = _session("u3", length=None)
    assert await store.create_upload(deferred, [_bucket()], now) is None
    short = await store.update_upload("u3", offset=0, length=500, buckets=[_bucket()], now=now)
    assert short is not None  # 600 + 500 > 1000
    assert (await store.get_upload("u3")).length is None  # type: ignore[union-attr]
    ok = await store.update_upload("u3", offset=0, length=400, buckets=[_bucket()], now=now)
    assert ok is None and (await store.get_upload("u3")).length == 400  # type: ignore[union-attr]
