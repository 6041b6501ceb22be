"""What the periodic jobs ask of every volume, whatever its storage: the maintenance hooks.

The jobs decide (which vfolders, which period, dry run or not, what is busy); a volume carries
out what only it can do on its storage — empty its trash, name the staged uploads left behind,
walk a vfolder's files, hash one, remove expired ones only if unchanged, list the vfolders it
holds.  The defaults here work on any volume through its file interface (object stores
included); local filesystems override them to work on held descriptors.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.errors import FileNotFound, StorageProxyError
from ..core.paths import RelPath
from ..core.types import DirEntryType, VFolderID

if TYPE_CHECKING:
    from .abc import AbstractVolume

T = TypeVar("T")
#: Files named in a retention result at most (the counts are always complete).
MAX_LISTED = 1000
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A regular file met by a maintenance walk."""

    path: str  # relative to the vfolder root
    size: int
    mtime: float  # seconds since the epoch


@dataclass(slots=True)
class TrashReport:
    purged: list[str] = field(default_factory=list)  # what was removed for good
    kept: int = 0  # entries still within their grace time


@dataclass(slots=True)
class Expired:
    paths: list[str] = field(default_factory=list)  # at most MAX_LISTED of them
    count: int = 0
    bytes: int = 0

    def add(self, path: str, size: int) -> None:
        self.count += 1
        self.bytes += size
        if len(self.paths) < MAX_LISTED:
            self.paths.append(path)


@dataclass(frozen=True, slots=True)
class StoredLayout:
    """What a volume holds, as the orphan scan compares it with the registry."""

    vfolders: frozenset[tuple[str, ...]]  # as ``VFolderID.relative_parts``
    strays: tuple[str, ...]  # entries that fit no level of the vfolder layout


async def walk_files(volume: AbstractVolume, vfid: VFolderID) -> AsyncIterator[StoredFile]:
    """Every file of the vfolder through ``scandir`` (the default for any volume)."""
    async for entry in volume.scandir(vfid, RelPath(()), recursive=True, limit=None):
        if entry.type is DirEntryType.FILE:
            yield StoredFile(entry.path, entry.stat.size, _seconds(entry.stat.modified))


async def file_digest(volume: AbstractVolume, vfid: VFolderID, rel: RelPath) -> tuple[str, int]:
    """The file's sha256 and size, read through ``read`` (the default for any volume)."""
    digest, size = hashlib.sha256(), 0
    async for chunk in volume.read(vfid, rel):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def expire_files(
    volume: AbstractVolume, vfid: VFolderID, older_than: float, dry_run: bool
) -> Expired:
    """Remove files last modified before ``older_than``, each only if it is still the file the
    walk saw (its size and time, looked at again just before); the default for any volume."""
    expired = Expired()
    async for found in volume.walk_files(vfid):
        if found.mtime >= older_than:
            continue
        rel = RelPath.parse(found.path)
        if not dry_run:
            try:
                now = await volume.stat(vfid, rel)
            except FileNotFound:
                continue
            # to the second: object stores list finer times than HEAD answers
            if (now.stat.size, int(_seconds(now.stat.modified))) != (found.size, int(found.mtime)):
                continue  # rewritten since the walk: it is not old any more
            try:
                await volume.delete_files(vfid, [rel])
            except StorageProxyError:
                continue
        expired.add(found.path, found.size)
    return expired


async def in_batches(run: Callable[..., Any], make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Items of a blocking iterator, fetched a batch at a time on ``run`` (an executor): the
    event loop never blocks, and a huge walk is never held in memory at once."""
    items = await run(make)
    try:
        while batch := await run(lambda: list(islice(items, _BATCH))):
            for item in batch:
                yield item
    finally:
        await run(getattr(items, "close", lambda: None))


def _seconds(when: datetime | float) -> float:
    return when.timestamp() if isinstance(when, datetime) else float(when)
