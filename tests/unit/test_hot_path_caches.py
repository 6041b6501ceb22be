"""What the per-request path keeps in memory never outlives a change: ACLs and vfolder records
held by one worker are reloaded once another worker changed them, and a kept token is honoured
only until it expires."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from api_fixtures import Daemon
from test_file_api import BASE, token
from test_file_api import shared as shared  # the fixture

from storage_proxy.core.errors import InvalidToken
from storage_proxy.core.records import AclEntry, Permission
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.tokens import TokenService

SECRET = "s" * 48


async def test_a_change_by_another_worker_is_seen_on_the_next_read(tmp_path: Path) -> None:
    a, b = SqliteMetadataStore(tmp_path / "m.sqlite3"), SqliteMetadataStore(tmp_path / "m.sqlite3")
    await a.open()
    await b.open()
    try:
        await a.register_vfolder("vol1", "user:u/f", "user:u", owner="alice")
        bob = AclEntry("user", "bob", Permission.RW)
        await a.set_acl_entry("vol1", "user:u/f", bob)
        assert await b.get_acl("vol1", "user:u/f") == [bob]  # b now holds a copy
        record = await b.get_vfolder("vol1", "user:u/f")
        assert record is not None and record.owner == "alice"

        await a.remove_acl_entry("vol1", "user:u/f", "user", "bob")  # revoked by the other
        assert await b.get_acl("vol1", "user:u/f") == []
        await a.unregister_vfolder("vol1", "user:u/f")
        assert await b.get_vfolder("vol1", "user:u/f") is None
    finally:
        await a.close()
        await b.close()


def test_a_kept_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = TokenService(SECRET, timedelta(minutes=1))
    token = tokens.issue_user("alice", [], timedelta(seconds=30))
    assert tokens.verify_user(token).sub == "alice"
    assert tokens.verify_user(token).sub == "alice"  # from memory now
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken):
        tokens.verify_user(token)


async def test_a_small_file_answers_validators_and_head_as_a_large_one(shared: Daemon) -> None:
    url, hdr = f"{BASE}/files/docs/readme.txt", token(shared, "bob")
    resp = await shared.client.get(url, headers=hdr)
    assert resp.status == 200 and await resp.read() == b"hello"
    etag, modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    assert resp.headers["Content-Type"] == "text/plain" and resp.headers["Accept-Ranges"] == "bytes"
    resp = await shared.client.get(url, headers={**hdr, "If-None-Match": etag})
    assert resp.status == 304
    resp = await shared.client.get(url, headers={**hdr, "If-Modified-Since": modified})
    assert resp.status == 304
    resp = await shared.client.head(url, headers=hdr)
    assert resp.status == 200 and resp.headers["ETag"] == etag and await resp.read() == b""
    resp = await shared.client.get(url, headers={**hdr, "Range": "bytes=1-2"})
    assert resp.status == 206 and await resp.read() == b"el"
