"""SIGTERM and SIGINT stop the daemon cleanly: in-flight requests finish, the exit status is 0.

The slow request is ``GET /folder/usage`` on a vfolder of tens of thousands of files, whose scan
is fanned out to the scanner's worker processes.  Those workers are held with SIGSTOP for the
moment the signal arrives, so the request is certainly still running then, whatever the speed
of the disk — and the scan then has to finish *during* shutdown, before the scanner is closed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from e2e_support import Daemon, Response, StartDaemon, new_vfid, port_accepts, stopped

pytestmark = pytest.mark.e2e

DIRS, FILES_PER_DIR = 40, 500  # > scan-workers * 16 subtrees, so the worker pool does the scan


def _fill_vfolder(d: Daemon, vfid: str) -> tuple[int, int]:
    r = d.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid})
    assert r.status == 200, r.body
    mount = Path(r.json()["path"])
    src = mount / "seed"
    src.write_bytes(b"0123456789")
    # Hard links: tens of thousands of directory entries, made in a fraction of a second.
    for i in range(DIRS):
        sub = mount / f"d{i:02}"
        sub.mkdir()
        for j in range(FILES_PER_DIR):
            os.link(src, sub / f"f{j}")
    count = DIRS * FILES_PER_DIR + 1
    # the 26.09 dialect counts directories as entries, with their own sizes (as 26.9.6)
    dir_bytes = sum((mount / f"d{i:02}").stat().st_size for i in range(DIRS))
    return count + DIRS, count * 10 + dir_bytes


def test_sigterm_lets_a_slow_request_finish(start_daemon_factory: StartDaemon) -> None:
    d = start_daemon_factory(storage_proxy={"scan-workers": 2})
    vfid = new_vfid()
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 204
    file_count, used_bytes = _fill_vfolder(d, vfid)

    workers = d.descendants()
    assert workers, "expected the scanner's worker processes below the daemon"
    result: dict[str, Response | BaseException] = {}

    def slow_request() -> None:
        try:
            result["r"] = d.manager("GET", "/folder/usage", {"volume": "vol1", "vfid": vfid})
        except BaseException as e:  # reported by the assertion below
            result["r"] = e

    with stopped(workers):
        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.3)  # the request is sent and its handler is waiting for the held workers
        assert thread.is_alive()
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for_log("shutting down: finishing in-flight requests")
        time.sleep(0.3)
        # Still running: waiting for the request, not accepting new connections.
        assert d.proc.poll() is None, d.log_text()
        assert thread.is_alive()
        assert not port_accepts(d.manager_port)
    thread.join(10)
    assert not thread.is_alive()

    r = result["r"]
    assert isinstance(r, Response), r
    assert r.status == 200, r.body
    assert r.json() == {"file_count": file_count, "used_bytes": used_bytes}
    assert d.proc.wait(5) == 0
    log = d.log_text()
    assert log.index("shutting down") < log.index("GET /folder/usage 200")
    assert log.index("GET /folder/usage 200") < log.index("storage-proxy stopped")
    assert "Traceback" not in log
    assert "cancelling" not in log  # no task was left behind
    # The scanner's worker processes (and multiprocessing's helpers) go away with it.
    deadline = time.monotonic() + 10  # generous: a loaded CI machine reaps slowly
    while (left := [pid for pid in workers if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind by the daemon: {_cmdlines(left)}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _cmdlines(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
        except OSError:
            out.append(f"{pid}: (gone)")
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_on_an_idle_daemon_exits_0(daemon: Daemon, sig: int) -> None:
    d = daemon
    assert d.manager("GET", "/volumes").status == 200
    started = time.monotonic()
    assert d.stop(sig) == 0
    assert time.monotonic() - started < 5
    log = d.log_text()
    assert "storage-proxy stopped" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert not port_accepts(d.manager_port)
    assert not port_accepts(d.client_port)


def test_sigterm_lets_an_upload_whose_body_is_still_arriving_finish(
    start_daemon_factory: StartDaemon,
) -> None:
    """The body's second half is sent after SIGTERM: it must still be received and stored."""
    import socket

    d = start_daemon_factory()
    vfid = new_vfid()
    assert d.manager("POST", "/folder/create", {"volume": "vol1", "vfid": vfid}).status == 204
    mount = Path(d.manager("GET", "/folder/mount", {"volume": "vol1", "vfid": vfid}).json()["path"])
    size = 256 * 1024
    data = os.urandom(size)
    r = d.manager(
        "POST",
        "/folder/file/upload",
        {"volume": "vol1", "vfid": vfid, "relpath": "late.bin", "size": size},
    )
    token = r.json()["token"]
    head = (
        f"PATCH /upload?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", d.client_port), timeout=10) as sock:
        sock.sendall(head + data[: size // 2])
        time.sleep(0.3)  # the handler is now reading the body
        d.proc.send_signal(signal.SIGTERM)
        d.wait_for_log("shutting down")
        time.sleep(0.2)
        sock.sendall(data[size // 2 :])
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 204"), reply
    assert d.proc.wait(10) == 0
    assert (mount / "late.bin").read_bytes() == data
