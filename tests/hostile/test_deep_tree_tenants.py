"""A tenant nests 3000 directories in its vfolder (as any compute session can): its snapshot is
refused with a problem (422 tree-too-deep) and leaves nothing behind, its tree is deleted, and
nothing it does makes another tenant's operations fail -- a write while the deep copy runs, a
clone of another vfolder, the other tenant's own deletes."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_support import Daemon, Response, http
from harness import TENANT, TOKEN_SECRET, StartHostile, Tenant, make_tenant, user_token

from helpers import nested_dirs, remove_deep_trees

DEPTH = 3000


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """pytest removes old temporary directories recursively: deep trees go here, at any depth."""
    yield
    remove_deep_trees(tmp_path)


def put(t: Tenant, name: str, data: bytes) -> int:
    req = urllib.request.Request(
        f"{t.files_url}/files/{name}", data=data, headers=t.auth, method="PUT"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def client(t: Tenant, method: str, path: str, body: object = None) -> Response:
    return http(method, f"{t.files_url}{path}", body, headers=t.auth, timeout=120)


def wait_task(t: Tenant, task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = t.daemon.manager("GET", f"/bgtask/{task_id}").json()
        if record["status"] not in ("pending", "running"):
            return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still running")


def test_a_deep_tree_breaks_nothing_of_another_tenant(plain_tenant: Tenant) -> None:
    mallory = plain_tenant
    other = make_tenant(mallory.daemon)
    (mallory.mount / "top").mkdir()
    nested_dirs(mallory.mount / "top", DEPTH, payload=b"x" * 10)
    (other.mount / "kept.txt").write_bytes(b"k" * 1000)

    with ThreadPoolExecutor(2) as pool:
        snapshot = pool.submit(client, mallory, "POST", "/snapshots", {"name": "deep"})
        writes = [put(other, f"w{i}.bin", b"w" * 4096) for i in range(20)]
        answer = snapshot.result()
    assert set(writes) <= {200, 201, 204}, writes
    assert answer.status == 422 and answer.json()["code"] == "tree-too-deep", answer
    area = mallory.mount.parent.parent.parent / ".sp-snapshots"
    for sub in [area, *(area.iterdir() if area.exists() else [])]:  # nothing half-copied
        assert not [p for p in sub.iterdir() if ".sp-tmp-" in p.name] if sub.is_dir() else True

    clone_dst = f"{other.vfid.rsplit('/', 1)[0]}/{os.urandom(16).hex()}"
    cloned = other.daemon.manager(
        "POST",
        "/folder/clone",
        {"src_volume": other.volume, "src_vfid": other.vfid, "dst_vfid": clone_dst},
    )
    assert cloned.status in (200, 202), cloned
    assert wait_task(other, cloned.json()["bgtask_id"])["status"] == "done"

    deleted = client(mallory, "DELETE", "/files/top?recursive=true")
    assert deleted.status in (200, 204), deleted
    assert not (mallory.mount / "top").exists()
    assert client(other, "DELETE", "/files/kept.txt").status in (200, 204)
    assert "Traceback" not in mallory.daemon.log_text()


def tenant_sorted(daemon: Daemon, first: str) -> Tenant:
    """A vfolder whose trash entry sorts where ``first`` (a hex digit) puts it."""
    scope = uuid.UUID(first + uuid.uuid4().hex[1:])
    vfid = f"user:{scope}/{uuid.uuid4().hex}"
    body = {"volume": "vol1", "vfid": vfid, "owner": TENANT}
    assert daemon.manager("POST", "/folder/create", body).status == 204
    mount = daemon.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid})
    return Tenant(
        daemon, "vol1", vfid, Path(mount.json()["path"]), user_token(TOKEN_SECRET, TENANT)
    )


def test_a_deep_tree_in_the_trash_does_not_keep_others_from_being_purged(
    start_hostile: StartHostile, tmp_path: Path
) -> None:
    jobs = '[jobs]\ntrash-grace = "1s"\ntrash-purge-interval = "1h"\n'
    evil = start_hostile(extra_config=jobs)
    evil = tenant_sorted(evil.daemon, "0")  # purged first
    victim = tenant_sorted(evil.daemon, "f")
    nested_dirs(evil.mount, DEPTH)
    (victim.mount / "private.txt").write_text("to be erased")
    for t in (evil, victim):
        deleted = t.manager("POST", "/folder/delete")
        assert deleted.status == 202, deleted
        assert wait_task(t, deleted.json()["bgtask_id"])["status"] == "done"
    time.sleep(1.5)  # past the grace time
    started = evil.daemon.manager("POST", "/jobs/trash-purge")
    assert started.status == 202, started
    assert wait_task(evil, started.json()["bgtask_id"])["status"] == "done"
    result = evil.daemon.manager("GET", "/jobs/trash-purge").json()["result"]
    assert len(result["purged"]["vol1"]) == 2, result  # the deep one first, then the victim's
    vol = tmp_path / "vol1"
    trashes = [vol / ".trash", *(d / ".trash" for d in vol.iterdir() if d.is_dir())]
    assert [os.listdir(t) for t in trashes if t.is_dir()] in ([], [[]])
    assert "Traceback" not in evil.daemon.log_text()
