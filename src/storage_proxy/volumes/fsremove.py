"""Removing a whole tree a tenant may still be changing: any depth, two descriptors, no
recursion, no link ever followed.  Blocking: call from a worker thread."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import uuid

from .beneath import opened
from .fstree import open_subdir

#: Passes over a tree being removed in which nothing nested could be undone (the tenant keeps
#: adding faster than it goes) before the removal gives up with ENOTEMPTY.
_STUBBORN_ROUNDS = 8
_FLAT_MARK = ".sp-rm-"


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` (of a held directory) and everything below it, at any depth, on two
    descriptors and without recursion: each subdirectory's own subdirectories are moved up into
    the tree's top (a rename inside it, never out), then it is emptied and removed, until the
    top is empty.  Nothing is ever followed: an entry swapped for a link is unlinked as a link.
    Directory listings are read as they go (a huge directory is never held whole)."""
    top = open_subdir(parent_fd, name)
    if top is None:
        _unlink_gone_ok(parent_fd, name)
        return
    with opened(top):
        _allow_removal(top)
        for _ in range(_STUBBORN_ROUNDS):
            _empty_top(top)
            try:
                os.rmdir(name, dir_fd=parent_fd)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
    raise OSError(errno.ENOTEMPTY, "still being filled while removed", name)


def _unlink_gone_ok(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:  # a directory again: a tenant racing us
        remove_tree(dir_fd, name)


def _empty_top(top: int) -> None:
    stubborn = 0
    while stubborn < _STUBBORN_ROUNDS:
        seen = flattened = 0
        with os.scandir(top) as it:
            for entry in it:
                seen += 1
                if entry.is_dir(follow_symlinks=False):
                    flattened += _flatten(top, entry.name)
                else:
                    _unlink_or_flatten(top, top, entry.name)
        if not seen:
            return
        stubborn = 0 if flattened else stubborn + 1
    raise OSError(errno.ENOTEMPTY, "still being filled while removed")


def _unlink_or_flatten(top: int, dir_fd: int, name: str) -> int:
    """Unlink a non-directory; move a directory up into ``top`` (1); 0 if it was unlinked."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return 0
    except FileNotFoundError:
        return 0
    except IsADirectoryError:
        pass  # a directory after all (the listing raced a tenant)
    if dir_fd == top:
        return _flatten(top, name)
    _move_up(dir_fd, name, top)
    return 1


def _flatten(top: int, name: str) -> int:
    """Empty subdirectory ``name`` of ``top`` (its subdirectories moved up) and remove it."""
    sub = open_subdir(top, name)
    if sub is None:
        _unlink_gone_ok(top, name)
        return 0
    moved = 0
    with opened(sub):
        _allow_removal(sub)
        for _ in range(_STUBBORN_ROUNDS):
            with os.scandir(sub) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        _move_up(sub, entry.name, top)
                        moved += 1
                    else:
                        moved += _unlink_or_flatten(top, sub, entry.name)
            try:
                os.rmdir(name, dir_fd=top)
                return moved + 1
            except FileNotFoundError:
                return moved + 1
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
    raise OSError(errno.ENOTEMPTY, "still being filled while removed", name)


def _move_up(dir_fd: int, name: str, top: int) -> None:
    try:
        os.rename(name, _flat_name(), src_dir_fd=dir_fd, dst_dir_fd=top)
    except FileNotFoundError:
        pass


def _allow_removal(fd: int) -> None:
    """A directory its owner made read-only still goes (as ``rm -rf`` does for its owner)."""
    st = os.fstat(fd)
    if st.st_mode & 0o700 != 0o700:
        os.chmod(fd, stat_mod.S_IMODE(st.st_mode) | 0o700)


def _flat_name() -> str:
    return f"{_FLAT_MARK}{uuid.uuid4().hex}"


def remove_path(path: str | os.PathLike[str]) -> None:
    """:func:`remove_tree` of an operator's path (the proxy's own areas: trash, stagings)."""
    path = os.fspath(path)
    parent, name = os.path.split(path.rstrip("/"))
    try:
        parent_fd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    with opened(parent_fd):
        remove_tree(parent_fd, name)
