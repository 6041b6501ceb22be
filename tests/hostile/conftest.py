"""The hostile suite's daemon: a real ``storage-proxy`` subprocess on free ports, a vfolder owned
by the tenant ``mallory``, and her user token (the daemon factory is the root ``daemon_fixtures``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Daemon, StartDaemon, http
from harness import user_token

TOKEN_SECRET = "hostile-suite-token-secret-0123456789"
TENANT = "mallory"


@dataclass
class Tenant:
    """A daemon, a vfolder the tenant owns, and the tenant's credentials."""

    daemon: Daemon
    volume: str
    vfid: str
    mount: Path
    token: str

    @property
    def files_url(self) -> str:
        scope, folder = self.vfid.rsplit("/", 1)
        return f"{self.daemon.client_url}/api/v1/vfolders/{self.volume}/{scope}/{folder}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def manager(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        payload = {"volume": self.volume, "vfid": self.vfid, **(body or {})}
        return self.daemon.manager(method, path, payload)


def make_tenant(daemon: Daemon, volume: str = "vol1") -> Tenant:
    vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
    created = daemon.manager(
        "POST", "/folder/create", {"volume": volume, "vfid": vfid, "owner": TENANT}
    )
    assert created.status == 204, created
    mount = daemon.manager("GET", "/folder/mount", {"volume": volume, "vfid": vfid})
    assert mount.status == 200, mount
    return Tenant(
        daemon, volume, vfid, Path(mount.json()["path"]), user_token(TOKEN_SECRET, TENANT)
    )


StartHostile = Callable[..., Tenant]


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
        return make_tenant(daemon)

    return start


@pytest.fixture
def plain_tenant(start_hostile: StartHostile) -> Tenant:
    """A tenant on a vfs volume (for attacks that do not depend on path resolution)."""
    return start_hostile()


@pytest.fixture(params=["auto", "walk"])
def tenant(start_hostile: StartHostile, request: pytest.FixtureRequest) -> Tenant:
    """A tenant on a vfs volume, with paths resolved by the kernel (openat2) and by the walk."""
    return start_hostile(storage_proxy={"path-resolution": request.param})


__all__ = ["Tenant", "http", "make_tenant"]
