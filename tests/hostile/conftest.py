"""The hostile suite's daemon: a real ``storage-proxy`` subprocess on free ports, a vfolder owned
by the tenant ``mallory``, and her user token (the daemon factory is the root ``daemon_fixtures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import StartDaemon
from harness import RACE_TALLY, TOKEN_SECRET, StartHostile, Tenant, make_tenant


@pytest.fixture
def start_hostile(start_daemon_factory: StartDaemon, tmp_path: Path) -> StartHostile:
    """``start_hostile(volume_path=…, storage_proxy={…}, extra_config=…)`` → a :class:`Tenant`."""

    def start(
        *,
        volume_path: Path | None = None,
        backend: str = "vfs",
        storage_proxy: Mapping[str, Any] | None = None,
        extra_config: str = "",
    ) -> Tenant:
        sp = {"secret": TOKEN_SECRET, "scan-workers": 0, **(storage_proxy or {})}
        path = volume_path or tmp_path / "vol1"
        daemon = start_daemon_factory(
            volumes={"vol1": {"backend": backend, "path": path}},
            storage_proxy=sp,
            extra_config=extra_config,
        )
        tenant = make_tenant(daemon)
        tenant.backend = backend
        return tenant

    return start


@pytest.fixture
def plain_tenant(start_hostile: StartHostile) -> Tenant:
    """A tenant on a vfs volume (for attacks that do not depend on path resolution)."""
    return start_hostile()


@pytest.fixture(params=["auto", "walk", "cephfs"])
def tenant(start_hostile: StartHostile, request: pytest.FixtureRequest, tmp_path: Path) -> Tenant:
    """A tenant on a vfs volume, with paths resolved by the kernel (openat2) and by the walk,
    and on a real CephFS (ceph-fuse) volume."""
    if request.param == "cephfs":
        from contract.backend_cephfs import CLUSTER

        path = CLUSTER.mount / "hostile" / tmp_path.name
        return start_hostile(volume_path=path, backend="cephfs")
    return start_hostile(storage_proxy={"path-resolution": request.param})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The raced requests of this run, so the total is on record with every CI run."""
    if not RACE_TALLY:
        return
    total = sum(n for _, n, _ in RACE_TALLY)
    leaks = sum(k for _, _, k in RACE_TALLY)
    terminalreporter.write_sep("-", f"hostile races: {total} requests raced, {leaks} leaked")
    for name, n, k in RACE_TALLY:
        terminalreporter.write_line(f"  {name}: {n} requests, {k} leaked")
