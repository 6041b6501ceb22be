"""The S3 server of the test session: a real Ceph RADOS Gateway, or any S3 the environment names.

By default the first test that needs S3 starts a throw-away single-node RGW
(``../shared/infra/rgw-up.sh``: a mon, a memstore OSD and radosgw, every port chosen free here,
so it never collides with the CephFS cluster or another test session) and it is stopped when the
session ends.  RGW checks what S3 checks — signatures, expiry, Content-MD5 — which moto does not.

To run the same tests against another S3 (AWS, MinIO, a shared RGW), set
``STORAGE_PROXY_TEST_S3_ENDPOINT`` and, for its credentials, ``STORAGE_PROXY_TEST_S3_ACCESS_KEY``,
``STORAGE_PROXY_TEST_S3_SECRET_KEY`` and ``STORAGE_PROXY_TEST_S3_REGION`` (default us-east-1).
Tests create a bucket of their own (:func:`new_bucket`), so a shared server is never cleared.

moto's server is still here (:func:`moto_server`) for the few tests that need a fault a real
server cannot be made to produce; each such test says why.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage_proxy.deltaview.testing import MotoServer

REPO = Path(__file__).resolve().parents[1]
INFRA = Path(os.environ.get("SP_CEPH_INFRA", REPO.parent / "shared" / "infra"))
ENV_PREFIX = "STORAGE_PROXY_TEST_S3_"
#: Written into the RGW folder so a CephFS fixture can tell this cluster from its own.
RGW_MARKER = "storage-proxy-tests.rgw"
_TOOLS = ("radosgw", "radosgw-admin", "ceph-mon", "ceph-osd", "ceph", "uuidgen", "bc", "curl")


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    """Where the session's S3 server answers and the credentials of its test user."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    kind: str = "rgw"  # "rgw", "moto" or "external"

    def client(self, **config: Any) -> Any:
        """A boto3 client on this endpoint (path-style, the test user's keys)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def storage_options(self) -> dict[str, str]:
        """object_store / deltalake options for this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }


def new_bucket(endpoint: S3Endpoint, prefix: str = "t") -> str:
    """Create a bucket no other test uses and return its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:20]}"
    endpoint.client().create_bucket(Bucket=name)
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports below the ephemeral range."""
    rng = int.from_bytes(os.urandom(2), "big")
    for attempt in range(200):
        base = 20000 + ((rng + attempt * 97) % 120) * 100
        if all(_bindable(p) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found for the test RGW")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RgwServer:
    """rgw-up.sh in a folder of its own, with free ports; ``stop`` is idempotent."""

    def __init__(self) -> None:
        self.rgw_dir: Path | None = None
        self.endpoint: S3Endpoint | None = None

    def start(self) -> S3Endpoint:
        if any(shutil.which(tool) is None for tool in _TOOLS):
            _run(["bash", str(REPO / "scripts" / "ci-apt.sh")], timeout=900)
        rgw_dir = Path(tempfile.mkdtemp(prefix="sp-rgw-"))
        (rgw_dir / RGW_MARKER).write_text(str(os.getpid()))
        ms_base = _port_block(40)
        access, secret = "AKIDSPTESTRGW0001", f"sp-test-{uuid.uuid4().hex}"
        env = {
            **os.environ,
            "RGW_DIR": str(rgw_dir),
            "RGW_PORT": str(free_port()),
            "MON_V2_PORT": str(free_port()),
            "MON_V1_PORT": str(free_port()),
            "MS_PORT_MIN": str(ms_base),
            "MS_PORT_MAX": str(ms_base + 39),
            "S3_ACCESS_KEY": access,
            "S3_SECRET_KEY": secret,
            "TIMEOUT": "120",
        }
        try:
            _run(["bash", str(INFRA / "rgw-up.sh")], env=env, timeout=300)
        except BaseException:
            subprocess.run(["bash", str(INFRA / "rgw-down.sh")], env=env, capture_output=True)
            shutil.rmtree(rgw_dir, ignore_errors=True)
            raise
        self.rgw_dir = rgw_dir
        self.endpoint = S3Endpoint(f"http://127.0.0.1:{env['RGW_PORT']}", access, secret)
        return self.endpoint

    def stop(self) -> None:
        rgw_dir, self.rgw_dir = self.rgw_dir, None
        if rgw_dir is None:
            return
        env = {**os.environ, "RGW_DIR": str(rgw_dir)}
        subprocess.run(["bash", str(INFRA / "rgw-down.sh")], env=env, capture_output=True)
        shutil.rmtree(rgw_dir, ignore_errors=True)


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


_lock = threading.Lock()
_endpoint: S3Endpoint | None = None
_error: str | None = None
_moto: MotoServer | None = None


def s3_endpoint() -> S3Endpoint:
    """The session's S3 server, started on first use (blocking: call it off the event loop)."""
    global _endpoint, _error
    with _lock:
        if _error is not None:
            pytest.fail(_error, pytrace=False)
        if _endpoint is None:
            external = os.environ.get(ENV_PREFIX + "ENDPOINT")
            if external:
                _endpoint = S3Endpoint(
                    external,
                    os.environ.get(ENV_PREFIX + "ACCESS_KEY", ""),
                    os.environ.get(ENV_PREFIX + "SECRET_KEY", ""),
                    os.environ.get(ENV_PREFIX + "REGION", "us-east-1"),
                    kind="external",
                )
            else:
                server = RgwServer()
                try:
                    _endpoint = server.start()
                except Exception as e:  # remembered: later tests fail fast with the same cause
                    _error = f"cannot start the test S3 server (Ceph RGW): {e}"
                    pytest.fail(_error, pytrace=False)
                atexit.register(server.stop)
        return _endpoint


def moto_server() -> MotoServer:
    """moto's S3 server, for faults a real server cannot produce (started on first use)."""
    global _moto
    with _lock:
        if _moto is None:
            _moto = MotoServer().start()
            atexit.register(_moto.stop)
        return _moto


def moto_endpoint() -> S3Endpoint:
    return S3Endpoint(moto_server().endpoint, "testing", "testing", kind="moto")
