"""Fixtures that run ``storage-proxy start-server`` as a subprocess on free ports.

A plugin of the root conftest (the e2e and hostile suites both use it).
``start_daemon_factory(...)`` writes a TOML config into ``tmp_path``, starts the daemon,
waits for the manager's ``GET /status`` and returns a :class:`Daemon` handle (ports, secret,
process, log file).  Every daemon it started is stopped at teardown: SIGTERM, then SIGKILL to its
process group.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Daemon, StartDaemon, clean_env, free_ports, start_daemon, write_config


@pytest.fixture
def start_daemon_factory(tmp_path: Path) -> Iterator[StartDaemon]:
    started: list[Daemon] = []
    counter = iter(range(1_000_000))

    def start(
        *,
        volumes: Mapping[str, Mapping[str, Any]] | None = None,
        storage_proxy: Mapping[str, Any] | None = None,
        extra_config: str = "",
        env: Mapping[str, str] | None = None,
        secret: str | None = None,
        config: Path | None | str = "generate",
        manager_port: int | None = None,
        client_port: int | None = None,
        wait_manager_port: int | None = None,
        wait_secret: str | None = None,
    ) -> Daemon:
        """Start a daemon.

        ``config="generate"`` writes a config (free ports, ``data-dir`` in tmp, the given
        volumes, the secret); a Path uses that file as is; ``None`` runs with no config at all
        (then pass the ports it will use, and the secret is left for the caller to find).
        ``wait_manager_port`` / ``wait_secret``: where the daemon will really listen and which
        secret it will take, when the environment overrides the file.
        """
        for attempt in range(3):
            try:
                return _start(
                    volumes=volumes,
                    storage_proxy=storage_proxy,
                    extra_config=extra_config,
                    env=env,
                    secret=secret,
                    config=config,
                    manager_port=manager_port,
                    client_port=client_port,
                    wait_manager_port=wait_manager_port,
                    wait_secret=wait_secret,
                )
            except pytest.fail.Exception as e:
                # a port taken between its choice and the bind: choose again (generated only)
                if config != "generate" or "address already in use" not in str(e) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start(
        *,
        volumes: Mapping[str, Mapping[str, Any]] | None,
        storage_proxy: Mapping[str, Any] | None,
        extra_config: str,
        env: Mapping[str, str] | None,
        secret: str | None,
        config: Path | None | str,
        manager_port: int | None,
        client_port: int | None,
        wait_manager_port: int | None,
        wait_secret: str | None,
    ) -> Daemon:
        n = next(counter)
        mport, cport = free_ports(2)
        mport = manager_port or mport
        cport = client_port or cport
        if config == "generate":
            secret = secret or "e2e-" + secrets.token_hex(12)
            vols = volumes or {"vol1": {"backend": "vfs", "path": tmp_path / f"vol1-{n}"}}
            config = write_config(
                tmp_path / f"storage-proxy-{n}.toml",
                data_dir=tmp_path / f"data-{n}",
                manager_port=mport,
                client_port=cport,
                secret=secret,
                volumes=vols,
                storage_proxy=storage_proxy,
                extra=extra_config,
            )
        assert config is None or isinstance(config, Path), config
        daemon = start_daemon(
            tmp=tmp_path,
            config_path=config,
            manager_port=wait_manager_port or mport,
            client_port=cport,
            secret=wait_secret or secret,
            env=clean_env(tmp_path, env),
            log_name=f"daemon-{n}.log",
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        daemon.stop()
