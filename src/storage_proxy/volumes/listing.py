"""Files of a vfolder in the byte order of their paths, one page at a time, from a cursor.

A page costs the listings of the directories on the way to the cursor plus the page itself, not
a walk of the whole tree: the tree is visited depth first with each directory's entries sorted
as their full keys sort — a directory as its name plus ``/`` — so the visit order *is* key order
("a-b" < "a/c" < "a0"), and subtrees wholly before the cursor or outside the prefix are skipped
without being opened.  Object stores list keys in this order natively and override the default.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..core.errors import FileNotFound, NotADirectory
from ..core.paths import RelPath
from ..core.types import DirEntry, DirEntryType, VFolderID

if TYPE_CHECKING:
    from .abc import AbstractVolume


#: Entries of one directory sorted on the event loop; more are sorted in a thread.
_SORT_ON_LOOP = 2000


def key_of(entry: DirEntry) -> bytes:
    """The entry's path as a listing key (bytes; a directory's ends with ``/``)."""
    tail = "/" if entry.type is DirEntryType.DIRECTORY else ""
    return (entry.path + tail).encode("utf-8", "surrogateescape")


def _relevant_dir(key: bytes, prefix: bytes, after: bytes) -> bool:
    if not (key.startswith(prefix) or prefix.startswith(key)):
        return False  # nothing below it can start with the prefix
    # every key below starts with ``key``: all of them sort before the cursor unless the cursor
    # itself lies below (or the directory sorts after it)
    return key > after or after.startswith(key)


async def _sorted(volume: AbstractVolume, vfid: VFolderID, rel: RelPath) -> list[DirEntry]:
    entries = [e async for e in volume.scandir(vfid, rel, limit=None)]
    if len(entries) > _SORT_ON_LOOP:  # a huge directory is sorted off the event loop
        await asyncio.to_thread(entries.sort, key=key_of, reverse=True)
    else:
        entries.sort(key=key_of, reverse=True)  # popped from the end: smallest first
    return entries


async def files_after(
    volume: AbstractVolume,
    vfid: VFolderID,
    *,
    prefix: str = "",
    start_after: str = "",
    limit: int,
) -> list[DirEntry]:
    """Up to ``limit`` files (anything but directories) whose paths start with ``prefix`` and
    sort after ``start_after``, in key order."""
    pfx = prefix.encode("utf-8", "surrogateescape")
    after = start_after.encode("utf-8", "surrogateescape")
    base = RelPath.parse(prefix.rsplit("/", 1)[0] if "/" in prefix else "")
    stack = [await _sorted(volume, vfid, base)]  # a prefix into no directory: FileNotFound
    found: list[DirEntry] = []
    while stack and len(found) < limit:
        level = stack[-1]
        if not level:
            stack.pop()
            continue
        entry = level.pop()
        key = key_of(entry)
        if entry.type is DirEntryType.DIRECTORY:
            if _relevant_dir(key, pfx, after):
                try:
                    stack.append(await _sorted(volume, vfid, RelPath.parse(entry.path)))
                except (FileNotFound, NotADirectory):
                    continue  # removed or replaced since its parent was listed
        elif key.startswith(pfx) and key > after:
            found.append(entry)
    return found
