"""Versions of files on local trees, kept where no user path reaches: blocking steps on held
descriptors.

A vfolder's versions live in ``<quota scope>/.sp-versions/<vfolder hex>/`` -- outside the
vfolder (a compute session that mounts it never sees them) but inside its quota scope, so they
count against the scope's quota (a proxy scan, CephFS rstats and XFS projects all see them).
One directory per file, named by the sha256 of its path, holds the file's path, its versions
(``<ns time hex>-<random hex>``: sorted by age) and a small JSON record beside each.

A replaced or deleted file is kept by a hard link when nothing else links to it (free: the old
inode just changes hands, and links may cross CephFS quota realms where renames may not), else
by a reflink, else by a copy.  Every change of one file's
versions holds its directory's ``flock``, so two writers replacing the same file never keep
the same content twice or lose one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat as stat_mod
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import VersionNotFound
from ..core.files import KeepVersions
from ..core.paths import RelPath
from ..core.snapshots import FileVersion
from . import beneath, filemeta, fstree
from . import posix_fs as fs
from .beneath import opened

VERSIONS_DIR = ".sp-versions"
_VERSION = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}$")
_PATH_FILE = "path"
_LINKABLE = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def file_key(rel: RelPath) -> str:
    return hashlib.sha256(str(rel).encode("utf-8", "surrogateescape")).hexdigest()


def new_version_id() -> str:
    return f"{time.time_ns():016x}-{secrets.token_hex(4)}"


def open_file_dir(area: Path, rel: RelPath, *, create: bool) -> int | None:
    """The file's version directory, opened (made when ``create``); None if it has none."""
    key = file_key(rel)
    path = area / key[:2] / key
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, _DIR)
    except FileNotFoundError:
        return None
    if create:
        try:
            os.stat(_PATH_FILE, dir_fd=fd)
        except FileNotFoundError:
            fs.write_json(fd, _PATH_FILE, {"path": str(rel)})
    return fd


@contextlib.contextmanager
def held(area: Path, rel: RelPath, *, create: bool) -> Iterator[int | None]:
    """The file's version directory under its lock, for one change."""
    fd = open_file_dir(area, rel, create=create)
    if fd is None:
        yield None
        return
    with opened(fd):
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd


def _checksum_of(fd: int, st: os.stat_result) -> str | None:
    """The sha256 recorded when the file was written, if it is still the file it was."""
    try:
        record = filemeta.read_xattr(fd)
    except OSError:
        return None
    return filemeta.to_file_meta(st, record).sha256


def _linked(vdir: int, vid: str, parent: int, name: str, st: os.stat_result) -> bool:
    """The file in ``parent`` given to the version directory as ``vid`` by a hard link (no
    bytes copied), then checked to be the inode that was looked at: a link only ever adds a
    name, so a file swapped in meanwhile loses nothing when that name is taken back."""
    if st.st_nlink != 1:
        return False  # other names reach that inode: a link would not keep its content
    try:
        os.link(name, vid, src_dir_fd=parent, dst_dir_fd=vdir, follow_symlinks=False)
    except OSError as e:
        if e.errno in _LINKABLE:
            return False
        raise
    got = beneath.lstat_at(vdir, vid)
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino) or not stat_mod.S_ISREG(got.st_mode):
        os.unlink(vid, dir_fd=vdir)
        return False
    return True


def _copied(vdir: int, vid: str, src: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with opened(os.open(vid, flags, 0o600, dir_fd=vdir)) as out:
        fstree.clone_or_copy(src, out)
        st = os.fstat(src)
        os.fchmod(out, stat_mod.S_IMODE(st.st_mode))
        filemeta.copy_xattr(src, out)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))


def keep(
    vdir: int, parent: int, name: str, keep: KeepVersions, reason: str, *, remove: bool = False
) -> str | None:
    """Keep the regular file ``name`` of ``parent`` as a version (``remove``: and take it away,
    a delete); its id, or None when there is no regular file there to keep."""
    try:
        st = beneath.lstat_at(parent, name)
    except FileNotFoundError:
        return None
    if not stat_mod.S_ISREG(st.st_mode):
        return None
    vid = new_version_id()
    with opened(beneath.open_regular(parent, name)) as src:
        st = os.fstat(src)
        sha256 = _checksum_of(src, st)
        if not _linked(vdir, vid, parent, name, st):
            _copied(vdir, vid, src)
        if remove:
            fstree.unlink_if_same(parent, name, st)
    fs.write_json(vdir, f"{vid}.json", {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "kept": time.time(),
        "sha256": sha256, "who": keep.who, "reason": reason,
    })  # fmt: skip
    prune(vdir, keep.limit)
    return vid


def version_ids(vdir: int) -> list[str]:
    """Oldest first."""
    return sorted(n for n, _ in fstree.list_dir_names(vdir) if _VERSION.match(n))


def prune(vdir: int, limit: int) -> None:
    """Drop the oldest versions beyond ``limit``."""
    ids = version_ids(vdir)
    for vid in ids[: max(0, len(ids) - limit)]:
        remove(vdir, vid)


def remove(vdir: int, vid: str) -> None:
    for name in (vid, f"{vid}.json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=vdir)


#: Versions kept without a sha256 are hashed when listed only up to this size.
HASH_UP_TO = 64 << 20


def describe(vdir: int, vid: str) -> FileVersion:
    """One version, with the sha256 it was kept with; one kept without (its file had none
    recorded) is hashed and recorded the first time it is asked for, if it is at most
    ``HASH_UP_TO`` bytes -- else it stays None: a listing must not read whole files, which a
    compute session can make arbitrarily large (and sparse) to stall the I/O pool."""
    try:
        st = beneath.lstat_at(vdir, vid)
    except FileNotFoundError:
        raise VersionNotFound(f"no version {vid}") from None
    record = fs.read_json(vdir, f"{vid}.json") or {}
    sha256 = record.get("sha256") or None
    if sha256 is None and st.st_size <= HASH_UP_TO:
        with opened(beneath.open_regular(vdir, vid)) as fd:
            (sha256,) = fstree.hash_fd(fd, "sha256")
        fs.write_json(vdir, f"{vid}.json", {**record, "sha256": sha256})
    mtime = record.get("mtime_ns", st.st_mtime_ns) / 1e9
    return FileVersion(
        id=vid,
        size=st.st_size,
        modified=datetime.fromtimestamp(mtime, UTC),
        kept=datetime.fromtimestamp(record.get("kept", st.st_ctime), UTC),
        sha256=sha256,
        who=record.get("who"),
        reason=str(record.get("reason", "overwrite")),
    )


def check_id(vid: str) -> str:
    if not _VERSION.match(vid):
        raise VersionNotFound(f"no version {vid}")
    return vid
