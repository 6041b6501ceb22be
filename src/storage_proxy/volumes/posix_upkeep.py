"""The maintenance hooks (``upkeep``) of local directory trees, on held descriptors.

A deleted vfolder waits in a trash directory (the volume's, or its scope's where a rename may
not leave a quota realm) until its grace time is over; its age is its ctime, which the rename
into the trash set.  Walks never follow a link, and a file is removed only if it is still the
inode the walk saw, so a tenant swapping things under a running job cannot make it read or
delete anything outside the vfolder.
"""

from __future__ import annotations

import logging
import os
import re
import stat as stat_mod
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from ..core.errors import IsADirectory
from ..core.paths import RelPath
from ..core.types import VFolderID
from . import fsremove, fstree
from .abc import AbstractVolume
from .beneath import opened
from .posix_fs import NEW_MARK, STAGING_MARK, UPLOADS_DIR, reap_staging
from .upkeep import Expired, StoredFile, StoredLayout, TrashReport, in_batches

log = logging.getLogger(__name__)

TRASH_DIR = ".trash"
# Backend.AI layout: <scope-hex>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>
_LEVELS = (
    re.compile(r"^[0-9a-f]{32}$"),
    re.compile(r"^[0-9a-f]{2}$"),
    re.compile(r"^[0-9a-f]{2}$"),
)
_LEAF = re.compile(r"^[0-9a-f]{28}$")


class PosixUpkeep(AbstractVolume):
    """The part of :class:`~.posix.BasePosixVolume` the jobs call."""

    @abstractmethod
    def _root(self, vfid: VFolderID, path: str | None = None) -> AbstractContextManager[int]:
        """The vfolder's root, held open for a block (blocking)."""

    def is_staging_name(self, name: str) -> bool:
        """A file the proxy is still writing (staged beside its target)."""
        return name.startswith((STAGING_MARK, NEW_MARK))

    async def reap_staging(self, older_than: float) -> list[str]:
        return await self.run_blocking(reap_staging, self.mount_path / UPLOADS_DIR, older_than)

    async def purge_trash(self, older_than: float) -> TrashReport:
        return await self.run_blocking(
            purge_trash, self.mount_path, older_than, self.remove_trashed_tree
        )

    def remove_trashed_tree(self, path: Path) -> None:
        """Remove one trashed directory for good (CephFS drops its snapshots first)."""
        fsremove.remove_path(path)

    async def walk_files(self, vfid: VFolderID) -> AsyncIterator[StoredFile]:
        def files() -> Iterator[StoredFile]:
            with self._root(vfid) as root:
                with opened(os.open(".", fstree.O_LIST_DIR, dir_fd=root)) as top:
                    for _, entry in fstree.walk_files(top):
                        if self.is_staging_name(entry.name):
                            continue  # being written right now
                        st = entry.stat
                        yield StoredFile(entry.path, st.st_size, st.st_mtime)

        async for found in in_batches(self.run_blocking, files):
            yield found

    async def file_digest(self, vfid: VFolderID, rel: RelPath) -> tuple[str, int]:
        """Read from the descriptor the file is opened on (never a path)."""
        local = await self.local_file(vfid, rel)
        assert local is not None
        with local:
            if local.is_dir:
                raise IsADirectory(str(rel))
            (digest,) = await self.run_blocking(fstree.hash_fd, local.fd, "sha256")
            return digest, local.stat.st_size

    async def expire_files(self, vfid: VFolderID, older_than: float, dry_run: bool) -> Expired:
        def expire() -> Expired:
            expired = Expired()
            with self._root(vfid) as root:
                with opened(os.open(".", fstree.O_LIST_DIR, dir_fd=root)) as top:
                    for parent, entry in fstree.walk_files(top):
                        st = entry.stat
                        if st.st_mtime >= older_than or self.is_staging_name(entry.name):
                            continue
                        if dry_run or fstree.unlink_if_same(parent, entry.name, st):
                            expired.add(entry.path, st.st_size)
            return expired

        found = await self.run_blocking(expire)
        if found.count and not dry_run:
            self.quota_model.invalidate(vfid)
        return found

    async def stored_vfolders(self) -> StoredLayout | None:
        return await self.run_blocking(find_vfolder_dirs, self.mount_path)


def trash_dirs(mount: Path) -> list[Path]:
    """The volume-wide trash and every per-scope one."""
    found = [mount / TRASH_DIR]
    try:
        with os.scandir(mount) as it:
            found += [Path(e.path) / TRASH_DIR for e in it if not e.name.startswith(".")]
    except FileNotFoundError:
        pass
    return [p for p in found if p.is_dir()]


def purge_trash(
    mount: Path, older_than: float, remove_tree: Callable[[Path], None] | None = None
) -> TrashReport:
    """Remove trash entries whose ctime is before ``older_than`` (blocking), on descriptors,
    at any depth, never following a link a tenant left in its vfolder.  An entry that cannot
    be removed is logged and kept for the next run: the entries after it are still purged."""
    report = TrashReport()
    remove = remove_tree if remove_tree is not None else fsremove.remove_path
    for trash in trash_dirs(mount):
        try:
            with os.scandir(trash) as it:
                names = sorted(e.name for e in it)
        except FileNotFoundError:
            continue
        for name in names:
            path = trash / name
            try:
                st = os.lstat(path)
                if st.st_ctime >= older_than:
                    report.kept += 1
                    continue
                if stat_mod.S_ISDIR(st.st_mode):
                    remove(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            except Exception:
                log.exception("cannot purge trash entry %s (kept for the next run)", path)
                report.kept += 1
                continue
            report.purged.append(os.path.relpath(path, mount))
    return report


def find_vfolder_dirs(root: Path) -> StoredLayout:
    """Every vfolder-shaped directory below ``root``, and entries that fit no layout level;
    dot-entries (trash, uploads, staging) belong to the proxy and are not looked at."""
    found: set[tuple[str, ...]] = set()
    strays: list[str] = []

    def visit(path: Path, parts: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            here = (*parts, entry.name)
            depth = len(parts)
            pattern = _LEVELS[depth] if depth < len(_LEVELS) else _LEAF
            if not (entry.is_dir(follow_symlinks=False) and pattern.match(entry.name)):
                strays.append("/".join(here))
            elif depth < len(_LEVELS):
                visit(Path(entry.path), here)
            else:
                found.add(here)

    visit(root, ())
    return StoredLayout(frozenset(found), tuple(strays))
