"""Several worker processes serving one node (``[storage-proxy] num-proc``), as Backend.AI does.

Each worker is a full daemon (its own event loop, root context and listeners) bound to the same
ports with SO_REUSEPORT, so the kernel spreads connections across them.  The supervisor makes the
secrets once (workers must never race to create them), forwards SIGTERM/SIGINT, and stops every
worker if one dies, so a service manager sees the failure and restarts the node.

What workers share is on disk: the volumes, the SQLite metadata (WAL mode, multi-process safe),
upload sessions, and the quota ledger of every write in flight (so together they never pass a
limit).  In-process state stays per worker: the usage caches (the ledger covers what they have
not seen yet).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from . import eventloop
from .secrets import MANAGER_SECRET_FILE, TOKEN_SECRET_FILE, ensure_secret

log = logging.getLogger(__name__)

STOP_GRACE_EXTRA = 10.0  # seconds beyond shutdown-timeout before a worker is killed


def _worker_main(config: dict[str, Any], index: int, log_level: str | None) -> None:
    from .logsetup import setup_logging
    from .server import cancel_leftover_tasks, serve

    setup_logging(config["logging"], log_level)

    async def run() -> None:
        try:
            await serve(config, worker_index=index, reuse_port=True)
        finally:
            await cancel_leftover_tasks()

    eventloop.run(run, config["storage-proxy"]["event-loop"])


def run_workers(config: dict[str, Any], count: int, log_level: str | None) -> int:
    """Start ``count`` workers and supervise them; returns the exit status for the node."""
    sp = config["storage-proxy"]
    data_dir = Path(sp["data-dir"])
    for configured, filename in (
        (config["api"]["manager"]["secret"], MANAGER_SECRET_FILE),
        (sp["secret"], TOKEN_SECRET_FILE),
    ):
        secret = ensure_secret(configured, data_dir, filename)
        if secret.generated_now:
            log.info(
                "generated %s (%s); read it with: cat %s", filename, secret.fingerprint, secret.path
            )
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(
            target=_worker_main,
            args=(config, i, log_level),
            name=f"storage-proxy-worker-{i}",
            daemon=False,
        )
        for i in range(count)
    ]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.is_alive() and w.pid is not None:
                w.terminate()  # SIGTERM: each worker shuts down gracefully

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for w in workers:
        w.start()
    log.info("supervising %d workers: %s", count, ", ".join(str(w.pid) for w in workers))
    failed = False
    pending = list(workers)
    while pending:
        for sentinel in wait([w.sentinel for w in pending]):
            done = next(w for w in pending if w.sentinel == sentinel)
            pending.remove(done)
            done.join()
            if done.exitcode != 0 or not stopping:
                failed = True
                if not stopping:
                    log.error("%s exited (status %s); stopping the node", done.name, done.exitcode)
                    stop(signal.SIGTERM, None)
    grace = sp["shutdown-timeout"].total_seconds() + STOP_GRACE_EXTRA
    for w in workers:
        w.join(grace)
        if w.is_alive():
            w.kill()
    return 1 if failed else 0
