"""A tenant nests 3000 directories in its vfolder (as any compute session can): its snapshot is
refused with a problem (422 tree-too-deep) and leaves nothing behind, its tree is deleted, and
nothing it does makes another tenant's operations fail -- a write while the deep copy runs, a
clone of another vfolder, the other tenant's own deletes."""

from __future__ import annotations

import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from e2e_support import Response, http
from harness import Tenant, make_tenant

from helpers import nested_dirs

DEPTH = 3000


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
