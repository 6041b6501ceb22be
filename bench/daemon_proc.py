"""Process helpers the benchmarks share: free ports, and stopping a daemon they started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

STOP_TIMEOUT = 15.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports the kernel reports free on 127.0.0.1 (all held until all are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL to the daemon's process group if it has not exited in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"daemon did not exit within {timeout:.0f}s of SIGTERM; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
