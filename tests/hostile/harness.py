"""What the hostile tests share: a tenant who swaps directories for symlinks, a world with things
outside the vfolder worth stealing, a signed-in user, and oracles that notice any escape.

The world: a vfolder holding a real directory ``d`` and a symlink ``s`` to a directory *outside*
the vfolder.  Both hold files of the same names (``secret.txt``, ``victim-*``, ``movable.txt``);
the outside ones carry a marker no inside file has, and the outside directory has a name of its
own (``outside-only.txt``).  :class:`Swapper` exchanges ``d`` and ``s`` atomically in a loop
(``renameat2(RENAME_EXCHANGE)``), so a request for ``d/…`` checked while ``d`` is the directory
may be used while ``d`` is the link — the race a tenant with a compute session can run.
Any byte of the marker in a response, any outside name in a listing, any change of the outside
directory is an escape.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_support import Daemon

from storage_proxy.services.hs256 import HS256

RENAME_EXCHANGE = 2
_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}
AT_FDCWD = -100
OUTSIDE_MARK = b"OUTSIDE-SECRET-7f3a9c"
INSIDE = b"inside content "
OUTSIDE_ONLY = "outside-only.txt"
SECRET_SIZE = 64 * 1024


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def renameat2(old: Path, new: Path, flags: int) -> None:
    number = _RENAMEAT2[platform.machine()]
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(
        ctypes.c_long(number),
        ctypes.c_int(AT_FDCWD),
        ctypes.c_char_p(os.fsencode(old)),
        ctypes.c_int(AT_FDCWD),
        ctypes.c_char_p(os.fsencode(new)),
        ctypes.c_uint(flags),
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(old))


def rotate(a: Path, b: Path, tmp: Path, n: int = 0) -> None:
    """Swap ``a`` and ``b`` through ``tmp`` (where RENAME_EXCHANGE is missing).  ``a`` is gone for
    a moment: a request may create a new ``a`` then (mkdir -p); it is moved aside."""
    os.rename(a, tmp)
    for attempt in range(1000):
        try:
            os.rename(b, a)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise
            os.rename(a, a.with_name(f"{a.name}.intruder-{n}-{attempt}"))
    os.rename(tmp, b)


def swap(a: Path, b: Path) -> None:
    """Exchange two entries atomically where the filesystem can, else by a rotation."""
    try:
        renameat2(a, b, RENAME_EXCHANGE)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        rotate(a, b, a.with_name(a.name + ".swap"))


class Swapper(threading.Thread):
    """Swaps two entries of a directory as fast as it can until stopped.

    With ``RENAME_EXCHANGE`` where the filesystem has it; elsewhere (FUSE filesystems may not) a
    rotation through a third name, which also leaves ``a`` missing for a moment."""

    def __init__(self, a: Path, b: Path) -> None:
        super().__init__(daemon=True, name="swapper")
        self.a, self.b = a, b
        self.swaps = 0
        self._stop_event = threading.Event()
        self.exchange = True
        self.error: BaseException | None = None

    def run(self) -> None:
        tmp = self.a.with_name(self.a.name + ".swap")
        try:
            while not self._stop_event.is_set():
                if self.exchange:
                    try:
                        renameat2(self.a, self.b, RENAME_EXCHANGE)
                    except OSError as e:
                        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                            raise
                        self.exchange = False
                        continue
                else:
                    rotate(self.a, self.b, tmp, self.swaps)
                self.swaps += 1
                if self.swaps % 64 == 0:
                    time.sleep(0)  # let others run
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)
        if self.error is not None:
            raise self.error


@dataclass
class RaceWorld:
    """A vfolder with ``d`` (inside) and ``s`` (link to outside) and the oracles."""

    vf: Path
    outside: Path
    snapshot: dict[str, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, vf: Path, outside: Path, victims: int = 64) -> RaceWorld:
        outside.mkdir(parents=True, exist_ok=True)
        (outside / "secret.txt").write_bytes((OUTSIDE_MARK * SECRET_SIZE)[: SECRET_SIZE + 4099])
        (outside / OUTSIDE_ONLY).write_bytes(OUTSIDE_MARK)
        (outside / "movable.txt").write_bytes(OUTSIDE_MARK)
        inside = vf / "d"
        inside.mkdir(parents=True, exist_ok=True)
        (inside / "secret.txt").write_bytes((INSIDE * SECRET_SIZE)[:SECRET_SIZE])
        (inside / "movable.txt").write_bytes(INSIDE)
        for i in range(victims):
            (outside / f"victim-{i}").write_bytes(OUTSIDE_MARK)
            (inside / f"victim-{i}").write_bytes(INSIDE)
        (outside / "sub").mkdir(exist_ok=True)
        (outside / "sub" / "deep.txt").write_bytes(OUTSIDE_MARK)
        (inside / "sub").mkdir(exist_ok=True)
        (inside / "sub" / "deep.txt").write_bytes(INSIDE)
        (vf / "s").symlink_to(outside)
        world = cls(vf, outside)
        world.snapshot = world.outside_state()
        return world

    def outside_state(self) -> dict[str, tuple[int, str]]:
        state = {}
        for path in sorted(self.outside.rglob("*")):
            rel = str(path.relative_to(self.outside))
            if path.is_symlink():
                state[rel] = (-1, os.readlink(path))
            elif path.is_dir():
                state[rel] = (0, "dir")
            else:
                data = path.read_bytes()
                state[rel] = (len(data), hashlib.sha256(data).hexdigest())
        return state

    def assert_outside_untouched(self) -> None:
        now = self.outside_state()
        added = sorted(set(now) - set(self.snapshot))
        removed = sorted(set(self.snapshot) - set(now))
        changed = sorted(k for k in now.keys() & self.snapshot.keys() if now[k] != self.snapshot[k])
        assert not (added or removed or changed), ("outside changed", added, removed, changed)

    def settle(self) -> None:
        """After a race: ``d`` is the real directory again and ``s`` the link."""
        d, s = self.vf / "d", self.vf / "s"
        if d.is_symlink() and s.is_dir() and not s.is_symlink():
            swap(d, s)
        parked = self.vf / "d.swap"
        if parked.exists() or parked.is_symlink():
            if not d.exists() and not d.is_symlink():
                os.rename(parked, d)
            elif not s.exists() and not s.is_symlink():
                os.rename(parked, s)


def leaked(data: bytes) -> bool:
    return OUTSIDE_MARK[:12] in data


def user_token(secret: str, sub: str, groups: list[str] | None = None, ttl: int = 3600) -> str:
    return HS256(secret).encode({"sub": sub, "groups": groups or [], "exp": int(time.time()) + ttl})


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- the tenant and her daemon ------------------------------------------------------------------
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
    backend: str = "vfs"

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


def make_tenant(daemon: Daemon, volume: str = "vol1", owner: str = TENANT) -> Tenant:
    vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
    created = daemon.manager(
        "POST", "/folder/create", {"volume": volume, "vfid": vfid, "owner": owner}
    )
    assert created.status == 204, created
    mount = daemon.manager("GET", "/folder/mount", {"volume": volume, "vfid": vfid})
    assert mount.status == 200, mount
    return Tenant(daemon, volume, vfid, Path(mount.json()["path"]), user_token(TOKEN_SECRET, owner))


StartHostile = Callable[..., Tenant]


#: Every raced request of this session, by test: (test id, requests, leaks), for the summary.
RACE_TALLY: list[tuple[str, int, int]] = []
