"""``num-proc``: several worker processes serve one node on the same ports (SO_REUSEPORT)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from e2e_support import StartDaemon, http, new_vfid

pytestmark = pytest.mark.e2e


def test_workers_share_the_ports_and_stop_together(start_daemon_factory: StartDaemon) -> None:
    d = start_daemon_factory(storage_proxy={"num-proc": 2, "scan-workers": 0})
    # Each worker says when it listens; only then can the kernel hand it connections.  (The
    # harness waits for the first listener only, and a loaded machine may start the other later.)
    for index in range(2):
        d.wait_for_log(f"(worker {index}) ready", timeout=60)
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:  # new connections reach both
        pids.add(http("GET", d.manager_url + "/status").json()["pid"])
    assert len(pids) == 2 and d.proc.pid not in pids, d.log_text()[-4000:]
    assert set(d.descendants()) >= pids

    # Work done through one worker is seen by the other (shared volume and metadata).
    vfid = new_vfid()
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 204
    statuses = {
        d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status
        for _ in range(20)
    }
    assert statuses == {409}
    size = 100_000
    token = d.manager(
        "POST",
        "/folder/file/upload",
        {"volume": "vol1", "vfid": vfid, "relpath": "w.bin", "size": size},
    ).json()["token"]
    data = os.urandom(size)
    for offset in range(0, size, 25_000):  # four PATCHes, spread over the workers
        assert _patch(d.client_url, token, offset, data[offset : offset + 25_000]) == 204
    mount = d.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid}).json()["path"]
    assert open(os.path.join(mount, "w.bin"), "rb").read() == data

    workers = d.descendants()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(15) == 0
    deadline = time.monotonic() + 10  # helpers (resource tracker) exit once the supervisor has
    while any(os.path.exists(f"/proc/{pid}") and not _is_zombie(pid) for pid in workers):
        assert time.monotonic() < deadline, f"left running: {workers}"
        time.sleep(0.05)


def test_no_worker_reads_a_deleted_vfolder(start_daemon_factory: StartDaemon) -> None:
    """Each worker keeps the roots of vfolders it read open for a while; a vfolder deleted
    through one worker is not read by the other through a root it still holds."""
    d = start_daemon_factory(storage_proxy={"num-proc": 2, "scan-workers": 0})
    for index in range(2):
        d.wait_for_log(f"(worker {index}) ready", timeout=60)
    vfid = new_vfid()
    body = {"volume": "vol1", "vfid": vfid}
    assert d.manager("POST", "/folder/create", body).status == 204
    mount = d.manager("GET", "/folder/mount", body).json()["path"]
    with open(os.path.join(mount, "small.txt"), "wb") as f:
        f.write(b"gone soon")
    token = d.manager("POST", "/folder/file/download", {**body, "relpath": "small.txt"})
    url = f"{d.client_url}/download?token={token.json()['token']}"
    pids = set()
    while len(pids) < 2:  # each request on a new connection: both workers read (and hold) it
        assert http("GET", url).body == b"gone soon"
        pids.add(http("GET", d.manager_url + "/status").json()["pid"])
    for _ in range(20):
        assert http("GET", url).status == 200
    deleted = d.manager("POST", "/folder/delete", body)
    assert deleted.status == 202, deleted
    task = deleted.json()["bgtask_id"]
    while d.manager("GET", f"/bgtask/{task}").json()["status"] in ("pending", "running"):
        time.sleep(0.01)
    statuses = [http("GET", url).status for _ in range(40)]
    assert set(statuses) == {404}, statuses


def _patch(base: str, token: str, offset: int, body: bytes) -> int:
    import urllib.request

    req = urllib.request.Request(
        f"{base}/upload?token={token}",
        data=body,
        method="PATCH",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_a_dying_worker_stops_the_node(start_daemon_factory: StartDaemon) -> None:
    d = start_daemon_factory(storage_proxy={"num-proc": 2, "scan-workers": 0})
    for index in range(2):  # a running node: both workers listen (the harness waits for one)
        d.wait_for_log(f"(worker {index}) ready", timeout=60)
    worker = http("GET", d.manager_url + "/status").json()["pid"]
    os.kill(worker, signal.SIGKILL)
    assert d.proc.wait(15) == 1  # a service manager sees the failure and restarts the node
    assert "exited" in d.log_text()
