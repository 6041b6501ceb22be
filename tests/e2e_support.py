"""Driving the daemon as a subprocess: configs, ports, HTTP, the CLI, wheels.

Imported by the e2e tests and their conftest (``tests/e2e`` is on ``sys.path`` there).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
CLI = [sys.executable, "-m", "storage_proxy.cli"]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


# -- ports, env, config ------------------------------------------------------------------------
#: Where test daemons listen: below the kernel's ephemeral range (32768 and up), so an outgoing
#: connection of some other test can never take a port between its choice and the daemon's bind.
_DAEMON_PORTS = range(10000, 20000)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports for daemons (all bound at once, then released)."""
    rng = random.SystemRandom()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < n:
            port = rng.choice(_DAEMON_PORTS)
            if port in ports:
                continue
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
        return ports


def clean_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment with no STORAGE_PROXY_* leaking in and a private home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_PROXY_")}
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def pythonpath_with(*dirs: Path) -> str:
    """A PYTHONPATH with ``dirs`` first and then whatever this process was given."""
    paths = [str(d) for d in dirs]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(paths)


def toml_str(value: str | Path) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(str(value))


def write_config(
    path: Path,
    *,
    data_dir: Path,
    manager_port: int,
    client_port: int,
    secret: str,
    volumes: Mapping[str, Mapping[str, Any]],
    storage_proxy: Mapping[str, Any] | None = None,
    extra: str = "",
) -> Path:
    """A config in the Backend.AI key layout. ``volumes``: name → {backend, path, options?};
    ``storage_proxy``: more ``[storage-proxy]`` keys; ``extra``: TOML text appended as is."""
    lines = [
        "[storage-proxy]",
        f"data-dir = {toml_str(data_dir)}",
        *(f"{key} = {json.dumps(value)}" for key, value in (storage_proxy or {}).items()),
        "",
        "[api.manager]",
        f"secret = {toml_str(secret)}",
        f'service-addr = {{ host = "127.0.0.1", port = {manager_port} }}',
        f'internal-addr = {{ host = "127.0.0.1", port = {free_ports(1)[0]} }}',
        "",
        "[api.client]",
        f'service-addr = {{ host = "127.0.0.1", port = {client_port} }}',
        "",
    ]
    for name, spec in volumes.items():
        lines += [
            f"[volume.{name}]",
            f"backend = {toml_str(spec['backend'])}",
            f"path = {toml_str(spec['path'])}",
        ]
        for key, value in (spec.get("options") or {}).items():
            lines.append(f"options.{key} = {json.dumps(value)}")  # a dotted key: [.options]
        lines.append("")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def new_vfid() -> str:
    return f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"


# -- HTTP --------------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    data = None if body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# -- the daemon --------------------------------------------------------------------------------
@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    manager_port: int
    client_port: int
    secret: str | None
    log_path: Path
    config_path: Path | None
    env: dict[str, str]
    host: str = "127.0.0.1"
    _log_file: Any = field(default=None, repr=False)

    @property
    def manager_url(self) -> str:
        return f"http://{self.host}:{self.manager_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    def manager(
        self, method: str, path: str, body: Any = None, *, secret: str | None = None
    ) -> Response:
        token = secret if secret is not None else self.secret
        headers = {AUTH_HEADER: token} if token is not None else {}
        return http(method, self.manager_url + path, body, headers=headers)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the daemon log:\n{text}")
            time.sleep(0.02)

    def descendants(self) -> list[int]:
        """PIDs of every process below the daemon (scanner workers, forkserver, …)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        out: list[int] = []
        stack = [self.proc.pid]
        while stack:
            for child in children.get(stack.pop(), []):
                out.append(child)
                stack.append(child)
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the daemon and wait; on timeout kill its whole process group (ours)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.close_log()
        return self.proc.returncode

    def kill(self) -> None:
        # The daemon runs in its own session: its group holds only it and what it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_daemon(
    *,
    tmp: Path,
    config_path: Path | None,
    manager_port: int,
    client_port: int,
    secret: str | None,
    env: dict[str, str],
    args: list[str] | None = None,
    log_name: str = "daemon.log",
) -> Daemon:
    """Start ``storage-proxy start-server`` and wait until the manager's ``/status`` answers."""
    log_path = tmp / log_name
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Daemon.stop
    cmd = [*CLI, "start-server"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    cmd += args or []
    proc = subprocess.Popen(
        cmd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp,
        start_new_session=True,
    )
    daemon = Daemon(
        proc=proc,
        manager_port=manager_port,
        client_port=client_port,
        secret=secret,
        log_path=log_path,
        config_path=config_path,
        env=env,
        _log_file=log_file,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            daemon.close_log()
            pytest.fail(
                f"the daemon exited with {proc.returncode} before answering /status:\n"
                f"{daemon.log_text()}"
            )
        try:
            if http("GET", daemon.manager_url + "/status", timeout=1.0).status == 200:
                return daemon
        except OSError:
            pass
        if time.monotonic() > deadline:
            daemon.kill()
            daemon.close_log()
            pytest.fail(
                f"the daemon did not answer /status in {START_TIMEOUT}s:\n{daemon.log_text()}"
            )
        time.sleep(0.05)


#: The ``start_daemon_factory`` fixture (see conftest.py).
StartDaemon = Callable[..., Daemon]


# -- the CLI -----------------------------------------------------------------------------------
def run_cli(
    *args: str | Path, env: Mapping[str, str], cwd: Path, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# -- wheels ------------------------------------------------------------------------------------
def setuptools_builds_wheels() -> bool:
    """setuptools builds wheels itself from 70.1 on; before that it needs the ``wheel`` package."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


def build_wheel(src: Path, out: Path) -> Path:
    """Build ``src`` (a setuptools project) into a wheel in ``out``, without any network.

    With a setuptools that can build wheels this is ``pip wheel --no-build-isolation``.  Without
    one (setuptools < 70.1 and no ``wheel`` package installed) the same wheel is assembled by
    :func:`assemble_wheel` from the same pyproject.toml, so the test still installs a real wheel.
    """
    out.mkdir(parents=True, exist_ok=True)
    if setuptools_builds_wheels():
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                str(out),
                str(src),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assemble_wheel(src, out)
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def assemble_wheel(src: Path, out: Path) -> Path:
    """A PEP 427 pure-Python wheel from pyproject's [project] and ``tool.setuptools.py-modules``."""
    meta = tomllib.loads((src / "pyproject.toml").read_text())
    project = meta["project"]
    name, version = project["name"], project["version"]
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for module in meta["tool"]["setuptools"]["py-modules"]:
        files[f"{module}.py"] = (src / f"{module}.py").read_bytes()
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: e2e_support\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    eps = []
    for group, entries in project.get("entry-points", {}).items():
        eps.append(f"[{group}]")
        eps += [f"{key} = {value}" for key, value in entries.items()]
        eps.append("")
    files[f"{info}/entry_points.txt"] = "\n".join(eps).encode()
    files[f"{info}/top_level.txt"] = "\n".join(meta["tool"]["setuptools"]["py-modules"]).encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


@contextlib.contextmanager
def stopped(pids: list[int]) -> Iterator[None]:
    """SIGSTOP ``pids`` (processes the test started) for the block; always SIGCONT them after."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
