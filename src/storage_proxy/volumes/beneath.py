"""Paths in a tree the tenant can write to, resolved on held directory descriptors.

A tenant who can write into its vfolder (every compute session that mounts it can) may turn any
directory into a symlink at any moment.  So a user path is never resolved as a string and used
later: it is resolved *relative to a descriptor of the vfolder root* in one step that refuses to
leave it, and the operation then runs on what was opened (``fstat``, ``read``, ``sendfile``,
``*at(dir_fd=…)`` calls).  Nothing can be swapped between the check and the use, because there is
no second lookup.

The kernel does the resolution where it can: ``openat2(2)`` with ``RESOLVE_BENEATH |
RESOLVE_NO_MAGICLINKS`` (Linux ≥ 5.6) refuses absolute symlinks, ``..`` above the root and
``/proc`` magic links with ``EXDEV``/``ELOOP``, and follows links that stay inside.  Elsewhere
(an older kernel, a seccomp filter that hides the syscall) the same rules run as a walk of
``openat(…, O_NOFOLLOW)`` one component at a time, reading each link and continuing below the
root; both give the same answers (the tests run both).

Blocking: every function here makes system calls; call them from a worker thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat as stat_mod
from collections.abc import Callable, Sequence

from ..core.errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    InsufficientStorage,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotARegularFile,
    PermissionDenied,
    QuotaExceeded,
    StorageProxyError,
)
from ..core.paths import RelPath

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437, "ppc64le": 437, "s390x": 437}
MAX_SYMLINKS = 40  # as the kernel's own limit

O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
#: Read a regular file without ever blocking on a FIFO or a device a tenant planted.
O_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_HOW_SIZE = ctypes.sizeof(_OpenHow)


class _Openat2:
    """The raw syscall through libc's ``syscall(2)``; ``available`` is probed once."""

    def __init__(self) -> None:
        self.number = _SYS_OPENAT2.get(platform.machine())
        self._syscall = None
        self.available = False
        if self.number is None:
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
        except (OSError, AttributeError):
            return
        self._syscall.restype = ctypes.c_long
        # declared, so a call converts its arguments in C (no ctypes object built per call)
        self._syscall.argtypes = [
            ctypes.c_long,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.POINTER(_OpenHow),
            ctypes.c_size_t,
        ]
        self._hows: dict[tuple[int, int, int], _OpenHow] = {}
        try:
            fd = self.call(os.open("/", O_PATH_DIR), ".", O_PATH_DIR, 0, _RESOLVE, close_dir=True)
        except OSError:
            return
        os.close(fd)
        self.available = True

    def call(
        self,
        dir_fd: int,
        path: str | bytes,
        flags: int,
        mode: int,
        resolve: int,
        *,
        close_dir=False,
    ) -> int:
        key = (flags, mode, resolve)
        how = self._hows.get(key)
        if how is None:  # a handful of combinations, each built once (never written to)
            how = self._hows.setdefault(key, _OpenHow(flags, mode, resolve))
        raw = os.fsencode(path)
        try:
            for _ in range(16):  # EAGAIN: a rename raced a ".." lookup; the kernel asks to retry
                assert self._syscall is not None and self.number is not None
                fd = self._syscall(self.number, dir_fd, raw, how, _HOW_SIZE)
                if fd >= 0:
                    return int(fd)
                err = ctypes.get_errno()
                if err not in (errno.EAGAIN, errno.EINTR):
                    raise OSError(err, os.strerror(err), os.fsdecode(raw))
            raise OSError(errno.EAGAIN, "path kept changing during resolution", os.fsdecode(raw))
        finally:
            if close_dir:
                os.close(dir_fd)


_OPENAT2 = _Openat2()


def kernel_resolution() -> bool:
    """Whether ``openat2`` does the work here (else the ``O_NOFOLLOW`` walk does)."""
    return _OPENAT2.available and not _force_walk


_force_walk = False


def use_walk(force: bool) -> None:
    """Run the portable walk even where the kernel has ``openat2`` (``[storage-proxy]
    path-resolution = "walk"``, applied once at start-up; the tests run both)."""
    global _force_walk
    _force_walk = force


#: Names no path below a held root may pass through, by the root's descriptor: the storage's
#: own entries that exist in every directory without being listed (CephFS ``.snap``, ONTAP
#: ``.snapshot``).  A descriptor number is unique while it is open; ``hidden_below`` registers
#: it for exactly that time.
_hidden: dict[int, frozenset[str]] = {}


def hidden_below(root_fd: int, names: frozenset[str]) -> _HiddenBelow:
    """Refuse ``names`` as any component below ``root_fd`` -- also where a symlink leads --
    while the block runs (resolution then takes the walk, which sees every component)."""
    return _HiddenBelow(root_fd, names)


class _HiddenBelow:
    # The context managers here are classes, not generators: they wrap every file operation
    # and a generator-based one costs several times as much to enter and leave.
    __slots__ = ("fd", "names")

    def __init__(self, fd: int, names: frozenset[str]) -> None:
        self.fd, self.names = fd, names

    def __enter__(self) -> int:
        if self.names:
            _hidden[self.fd] = self.names
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.names:
            _hidden.pop(self.fd, None)


# -- the one resolution primitive --------------------------------------------------------------
def open_beneath(root_fd: int, parts: Sequence[str], flags: int, mode: int = 0) -> int:
    """Open ``parts`` below the directory ``root_fd`` without ever leaving it.

    Symlinks are followed while they stay below the root (``O_NOFOLLOW`` in ``flags`` keeps the
    last component as it is); a path that would leave raises ``OSError(EXDEV)``, a link loop
    ``OSError(ELOOP)``.  An empty ``parts`` opens the root itself.
    """
    flags |= os.O_CLOEXEC
    if not parts:
        return os.open(".", flags & ~os.O_NOFOLLOW, mode, dir_fd=root_fd)
    hidden = _hidden.get(root_fd)
    if hidden:
        return _walk_open(root_fd, list(parts), flags, mode, hidden)
    if kernel_resolution():
        return _OPENAT2.call(root_fd, "/".join(parts), flags, mode, _RESOLVE)
    return _walk_open(root_fd, list(parts), flags, mode)


def _walk_open(
    root_fd: int, parts: list[str], flags: int, mode: int, hidden: frozenset[str] = frozenset()
) -> int:
    """The portable resolution: a descriptor per level, links read and expanded by hand."""
    follow_last = not flags & os.O_NOFOLLOW
    stack = [os.dup(root_fd)]  # descriptors of the directories walked; [0] is the root
    pending = list(reversed(parts))
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name in hidden:
                raise OSError(errno.EXDEV, "a name the storage reserves", name)
            if name == "..":
                if len(stack) == 1:
                    raise OSError(errno.EXDEV, "path leaves the tree", name)
                os.close(stack.pop())
                continue
            last = not pending
            target = _link_target(stack[-1], name) if (follow_last or not last) else None
            if target is not None:
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
                if target.startswith("/"):
                    raise OSError(errno.EXDEV, "absolute symlink leaves the tree", name)
                pending.extend(reversed(target.split("/")))
                continue
            if last:
                return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
            stack.append(os.open(name, O_PATH_DIR | os.O_NOFOLLOW, dir_fd=stack[-1]))
        # the path ended in "." or "..": open the directory reached
        return os.open(".", flags & ~os.O_NOFOLLOW, mode, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def _link_target(dir_fd: int, name: str) -> str | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat_mod.S_ISLNK(st.st_mode):
        return None
    return os.fsdecode(os.readlink(name, dir_fd=dir_fd))


# -- what the volumes build on -----------------------------------------------------------------
def opened(fd: int) -> _Opened:
    """``with opened(fd) as fd:`` closes it when the block ends."""
    return _Opened(fd)


class _Opened:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class HeldRoot:
    """``with HeldRoot(path, hidden, missing) as root_fd:`` a tree's root held for one
    operation, ``hidden`` names refused below it (:func:`hidden_below`) meanwhile; ``missing``
    makes the error for a root that is not there."""

    __slots__ = ("path", "hidden", "missing", "fd")

    def __init__(
        self, path: str | os.PathLike[str], hidden: frozenset[str], missing: Callable[[], Exception]
    ) -> None:
        self.path, self.hidden, self.missing, self.fd = path, hidden, missing, -1

    def __enter__(self) -> int:
        try:
            self.fd = open_root(self.path)
        except (FileNotFoundError, NotADirectoryError):
            raise self.missing() from None
        if self.hidden:
            _hidden[self.fd] = self.hidden
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.hidden:
            _hidden.pop(self.fd, None)
        os.close(self.fd)


def open_root(path: str | os.PathLike[str]) -> int:
    """A descriptor of a tree's root (an operator's path: symlinks in it are the operator's)."""
    return os.open(path, O_PATH_DIR)


def open_dir(root_fd: int, rel: RelPath) -> int:
    """An ``O_PATH`` descriptor of a directory below the root (links inside followed)."""
    return open_beneath(root_fd, rel.parts, O_PATH_DIR)


def open_parent(root_fd: int, rel: RelPath) -> int:
    """The directory that holds ``rel``'s last component: ``(fd, rel.name)`` is the entry."""
    if rel.name in _hidden.get(root_fd, ()):
        raise OSError(errno.EXDEV, "a name the storage reserves", rel.name)
    return open_dir(root_fd, rel.parent)


def make_dirs(root_fd: int, rel: RelPath, mode: int = 0o755) -> int:
    """``mkdir -p`` below the root; returns an ``O_PATH`` descriptor of the directory.

    Existing components are resolved beneath the root; new ones are created one by one and opened
    with ``O_NOFOLLOW``, so a link planted in between is never followed.
    """
    try:
        return open_dir(root_fd, rel)
    except FileNotFoundError:
        if not rel.parts:
            raise
    if rel.name in _hidden.get(root_fd, ()):  # never made, as never resolved
        raise OSError(errno.EXDEV, "a name the storage reserves", rel.name)
    parent = make_dirs(root_fd, rel.parent, mode)
    with opened(parent):
        try:
            os.mkdir(rel.name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        return os.open(rel.name, O_PATH_DIR | os.O_NOFOLLOW, dir_fd=parent)


def lstat_at(dir_fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def open_regular(dir_fd: int, name: str) -> int:
    """Open an entry for reading only if it is a regular file (never a FIFO, device or link)."""
    fd = os.open(name, O_READ | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_for_read(root_fd: int, rel: RelPath) -> int:
    """A readable descriptor of a regular file or a directory below the root.

    Opened without blocking (a FIFO planted by a tenant cannot hold a thread), then refused
    unless it is a regular file or a directory.
    """
    fd, _ = open_checked(root_fd, rel)
    try:
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_checked(root_fd: int, rel: RelPath) -> tuple[int, os.stat_result]:
    """:func:`open_for_read` and the descriptor's stat, still ``O_NONBLOCK`` (no matter for a
    ``pread`` of a regular file; ``sendfile`` wants it cleared first)."""
    fd = open_beneath(root_fd, rel.parts, O_READ)
    try:
        st = os.fstat(fd)
        if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
            raise NotARegularFile(f"not a regular file or directory: {rel}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def fd_path(fd: int) -> str:
    """What the kernel says a descriptor points at now (for display and mounts only)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def errors_as(what: object = "") -> _ErrorsAs:
    """Turn an OSError into the domain error that names what went wrong (never a 500).

    ``EXDEV`` and ``ELOOP`` from a resolution mean the path would leave its tree or loops.
    """
    return _ErrorsAs(what)


class _ErrorsAs:
    __slots__ = ("what",)

    def __init__(self, what: object) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, e: BaseException | None, tb: object) -> None:
        if not isinstance(e, OSError) or isinstance(e, StorageProxyError):
            return
        error = _domain_error(e, self.what)
        if isinstance(error, StorageProxyError):
            error.subject = str(self.what)
        raise error from None


def _domain_error(e: OSError, what: object) -> Exception:
    code = e.errno
    if code in (errno.EXDEV, errno.ELOOP):
        return InvalidPath(f"path escapes its vfolder or loops: {what}")
    if code == errno.ENOENT:
        return FileNotFound(f"no such file or directory: {what}")
    if code == errno.EEXIST:
        return FileExists(f"already exists: {what}")
    if code == errno.ENOTDIR:
        return NotADirectory(f"not a directory: {what}")
    if code == errno.EISDIR:
        return IsADirectory(f"is a directory: {what}")
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"the storage refused access to {what}")
    if code == errno.ENOTEMPTY:
        return DirectoryNotEmpty(f"directory not empty: {what}")
    if code == errno.EDQUOT:
        return QuotaExceeded(f"the storage quota is exceeded while writing {what}")
    if code == errno.ENOSPC:
        return InsufficientStorage(f"no space left while writing {what}")
    if code in (errno.EINVAL, errno.ENAMETOOLONG, errno.EILSEQ, errno.EBUSY):
        return InvalidPath(f"{e.strerror}: {what}")
    return e
