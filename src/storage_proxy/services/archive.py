"""A directory as a streamed zip, from any volume, in bounded memory, holding no thread.

The encoder writes what a streaming reader needs and nothing that needs seeking: each entry's
local header, its bytes (stored, not compressed: the data are mostly compressed already), a data
descriptor with the CRC and sizes, and at the end the central directory — ZIP64 throughout, so
files and archives over 4 GiB are fine.  Names are the raw bytes of the file names: UTF-8 ones
are flagged as such, any other bytes pass through as they are (a name that is not valid UTF-8
never breaks the archive).

Sources: :class:`LocalTree` walks a held directory descriptor of a local volume (never entering a
directory that was swapped for a symlink, never opening anything but regular files) and reads in
the volume's I/O pool; :class:`VolumeTree` lists and reads through the volume interface (object
stores); :class:`Selection` puts several files and directories of one vfolder in one archive,
each under its own path, opening each (beneath the vfolder's root, as every tenant path is) only
when the archive reaches it.  Between two reads nothing is held but the current file's
descriptor, so a client that stalls costs no thread — and the download door drops it after
its idle timeout.
"""

from __future__ import annotations

import os
import stat as stat_mod
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ..core.errors import FileNotFound, TreeTooDeep
from ..core.paths import RelPath
from ..core.types import DirEntry, DirEntryType, VFolderID
from ..volumes import fstree
from ..volumes.abc import AbstractVolume, ReadOptions
from ..volumes.beneath import open_regular

if TYPE_CHECKING:
    from ..volumes.snapshots import SnapshotTree

READ_SIZE = 1 << 20
#: Pieces of the archive smaller than this are gathered before they are written.
COALESCE = 256 << 10
#: Files up to this size are read whole in the walker's thread, with their directory entry.
INLINE_READ = 64 << 10
_BATCH = 32
_UTF8 = 0x800
_DESCRIPTOR = 0x08
_VERSION = 45  # ZIP64
_MADE_BY = (3 << 8) | _VERSION  # Unix: external attributes carry the mode
_MAX32 = 0xFFFFFFFF

Runner = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class ZipItem:
    """One entry: its name inside the archive, kind, mode and mtime, and how to read it."""

    name: bytes
    is_dir: bool
    mode: int
    mtime: float
    chunks: Callable[[], AsyncIterator[tuple[bytes, int]]] | None = None  # (bytes, crc so far)


class ZipSource(Protocol):
    def items(self) -> AsyncIterator[ZipItem]: ...

    async def close(self) -> None:
        """Release what the source holds (called once the archive is done or abandoned)."""


def _dos_datetime(ts: float) -> tuple[int, int]:
    t = time.localtime(max(ts, 315532800))  # the format starts in 1980
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def _flags(name: bytes) -> int:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return _DESCRIPTOR
    return _DESCRIPTOR | _UTF8


class ZipEncoder:
    """Produces the bytes of a streamed ZIP64 archive, entry by entry."""

    def __init__(self) -> None:
        self.offset = 0
        self._central: list[bytes] = []

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def begin(self, item: ZipItem) -> bytes:
        self._start = self.offset
        self._dos = _dos_datetime(item.mtime)
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        header = struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            _VERSION,
            _flags(item.name),
            0,
            *self._dos,
            0,
            _MAX32,
            _MAX32,
            len(item.name),
            len(extra),
        )
        return self._out(header + item.name + extra)

    def end(self, item: ZipItem, crc: int, size: int) -> bytes:
        self.offset += size  # the entry's bytes went out between begin and end
        descriptor = struct.pack("<IIQQ", 0x08074B50, crc, size, size)
        kind = stat_mod.S_IFDIR if item.is_dir else stat_mod.S_IFREG
        attrs = ((kind | stat_mod.S_IMODE(item.mode)) << 16) | (0x10 if item.is_dir else 0)
        extra = struct.pack("<HHQQQ", 1, 24, size, size, self._start)
        self._central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                _MADE_BY,
                _VERSION,
                _flags(item.name),
                0,
                *self._dos,
                crc,
                _MAX32,
                _MAX32,
                len(item.name),
                len(extra),
                0,
                0,
                0,
                attrs,
                _MAX32,
            )
            + item.name
            + extra
        )
        return self._out(descriptor)

    def finish(self) -> bytes:
        start, count = self.offset, len(self._central)
        central = b"".join(self._central)
        end64 = self.offset + len(central)
        tail = struct.pack(
            "<IQHHIIQQQQ",
            0x06064B50,
            44,
            _MADE_BY,
            _VERSION,
            0,
            0,
            count,
            count,
            len(central),
            start,
        )
        tail += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        tail += struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            min(count, 0xFFFF),
            min(count, 0xFFFF),
            min(len(central), _MAX32),
            min(start, _MAX32),
            0,
        )
        return self._out(central + tail)


#: Told the size of each file once the archive holds all of it.
FileDone = Callable[[int], Awaitable[None]]


async def stream_zip(source: ZipSource, done: FileDone | None = None) -> AsyncIterator[bytes]:
    """The archive's bytes, in chunks of at most ``READ_SIZE`` (plus small headers); headers
    and small files are gathered into pieces of about ``COALESCE`` bytes, so that a tree of
    small files costs a write per many files, not three per file.  ``done`` hears of each
    file (not directory) as it is complete in the archive."""
    zip_ = ZipEncoder()
    held: list[bytes] = []
    held_size = 0
    async for item in source.items():
        held.append(zip_.begin(item))
        crc = size = 0
        if item.chunks is not None:
            async for chunk, running_crc in item.chunks():
                size += len(chunk)
                crc = running_crc
                if len(chunk) >= COALESCE:
                    if held:
                        yield b"".join(held)
                        held, held_size = [], 0
                    yield chunk
                else:
                    held.append(chunk)
                    held_size += len(chunk)
        held.append(zip_.end(item, crc, size))
        held_size += 128
        if done is not None and item.chunks is not None:
            await done(size)
        if held_size >= COALESCE:
            yield b"".join(held)
            held, held_size = [], 0
    held.append(zip_.finish())
    yield b"".join(held)


class LocalTree:
    """A held directory of a local volume; takes over (and closes) the descriptor."""

    def __init__(self, dir_fd: int, run: Runner) -> None:
        self._fd = dir_fd
        self._run = run
        self._walker: Iterator[tuple[int, fstree.Entry]] | None = None

    async def close(self) -> None:
        fd, self._fd = self._fd, -1
        walker, self._walker = self._walker, None
        if fd >= 0:
            await self._run(_close_walk, walker, fd)

    async def items(self) -> AsyncIterator[ZipItem]:
        depth = fstree.max_depth()
        self._walker = walker = fstree.walk(self._fd, sort=True, limit_depth=depth)
        try:
            while batch := await self._run(_next_batch, walker):
                pending = [fd for _, fd in batch if fd is not None]
                try:
                    for item, fd in batch:
                        if fd is not None:
                            item.chunks = partial(self._chunks, fd)
                        yield item  # read to the end before the next item is asked for
                        if fd is not None:
                            pending.remove(fd)
                            os.close(fd)
                finally:
                    for fd in pending:
                        os.close(fd)
        finally:
            await self.close()

    async def _chunks(self, fd: int) -> AsyncIterator[tuple[bytes, int]]:
        offset, crc = 0, 0
        while True:
            chunk, crc = await self._run(_read_crc, fd, offset, crc)
            if not chunk:
                return
            offset += len(chunk)
            yield chunk, crc


def _next_batch(walker: Iterator[tuple[int, fstree.Entry]]) -> list[tuple[ZipItem, int | None]]:
    """Up to ``_BATCH`` entries, each regular file opened right away (its parent descriptor is
    valid only now); links, devices and anything that changed meanwhile are left out."""
    out: list[tuple[ZipItem, int | None]] = []
    for parent, entry in walker:
        name = os.fsencode(entry.path)
        st = entry.stat
        if entry.is_dir:
            out.append((ZipItem(name + b"/", True, st.st_mode, st.st_mtime), None))
        elif entry.is_file:
            try:
                fd = open_regular(parent, entry.name)
            except OSError:
                continue  # gone, or no longer a regular file
            item = ZipItem(name, False, st.st_mode, st.st_mtime)
            if st.st_size <= INLINE_READ:
                try:
                    data = os.pread(fd, INLINE_READ + 1, 0)
                except OSError:
                    os.close(fd)
                    continue
                if len(data) <= INLINE_READ:  # whole: no thread hop per read later
                    os.close(fd)
                    item.chunks = partial(_in_memory, data, zlib.crc32(data))
                    out.append((item, None))
                    continue
            out.append((item, fd))
        if len(out) >= _BATCH:
            break
    return out


async def _in_memory(data: bytes, crc: int) -> AsyncIterator[tuple[bytes, int]]:
    if data:
        yield data, crc


def _close_walk(walker: Iterator[Any] | None, fd: int) -> None:
    close = getattr(walker, "close", None)
    if close is not None:
        close()  # closes the descriptors of the levels being walked
    os.close(fd)


def _read_crc(fd: int, offset: int, crc: int) -> tuple[bytes, int]:
    chunk = os.pread(fd, READ_SIZE, offset)
    return chunk, zlib.crc32(chunk, crc)


class VolumeTree:
    """A directory of any volume, listed and read through the volume interface."""

    def __init__(self, volume: AbstractVolume, vfid: VFolderID, relpath: RelPath) -> None:
        self._volume, self._vfid, self._rel = volume, vfid, relpath

    async def close(self) -> None:
        pass

    async def _entries(self) -> list[DirEntry]:
        return [
            e async for e in self._volume.scandir(self._vfid, self._rel, recursive=True, limit=None)
        ]

    def _read(self, rel: RelPath, options: ReadOptions) -> AsyncIterator[bytes]:
        return self._volume.read(self._vfid, rel, options)

    async def items(self) -> AsyncIterator[ZipItem]:
        base = str(self._rel) + "/" if self._rel.parts else ""
        entries = await self._entries()
        entries.sort(key=lambda e: e.path)
        limit, top = fstree.max_depth(), len(self._rel.parts)
        if any(e.path.count("/") + 1 - top > limit for e in entries):
            raise TreeTooDeep(f"the tree is nested deeper than {limit} levels")
        for e in entries:
            name = os.fsencode(e.path[len(base) :] if e.path.startswith(base) else e.path)
            mtime = e.stat.modified.timestamp()
            if e.type is DirEntryType.DIRECTORY:
                yield ZipItem(name + b"/", True, e.stat.mode or 0o755, mtime)
            elif e.type is DirEntryType.FILE:
                chunks = partial(self._chunks, RelPath.parse(e.path))
                yield ZipItem(name, False, e.stat.mode or 0o644, mtime, chunks)

    async def _chunks(self, rel: RelPath) -> AsyncIterator[tuple[bytes, int]]:
        crc = 0
        async for chunk in self._read(rel, ReadOptions(chunk_size=READ_SIZE)):
            crc = zlib.crc32(chunk, crc)
            yield chunk, crc


class SnapshotZip(VolumeTree):
    """A directory of a snapshot (read-only, any backend), through its tree."""

    def __init__(self, tree: SnapshotTree, relpath: RelPath) -> None:
        self._tree, self._rel = tree, relpath

    async def _entries(self) -> list[DirEntry]:
        return await self._tree.scandir(self._rel, recursive=True, limit=None)

    def _read(self, rel: RelPath, options: ReadOptions) -> AsyncIterator[bytes]:
        return self._tree.read(rel, options)


async def _volume_chunks(
    volume: AbstractVolume, vfid: VFolderID, rel: RelPath
) -> AsyncIterator[tuple[bytes, int]]:
    crc = 0
    async for chunk in volume.read(vfid, rel, ReadOptions(chunk_size=READ_SIZE)):
        crc = zlib.crc32(chunk, crc)
        yield chunk, crc


class Held:
    """A zip source that gives something back (its caller's costly slot) once it is closed."""

    def __init__(self, source: ZipSource, release: Callable[[], None]) -> None:
        self._source, self._release = source, release

    def items(self) -> AsyncIterator[ZipItem]:
        return self._source.items()

    async def close(self) -> None:
        try:
            await self._source.close()
        finally:
            self._release()


class Selection:
    """Several entries of one vfolder, each under its path from the vfolder root (a directory
    with everything below it).

    The entries were looked up when the download was asked for (a missing one is a 404 before
    the first byte); each is opened again, beneath the root, when the archive reaches it — one
    descriptor at a time however many are named — and one that vanished meanwhile is left out,
    as a file that vanishes from a directory being zipped is.
    """

    def __init__(self, volume: AbstractVolume, vfid: VFolderID, entries: list[DirEntry]) -> None:
        self._volume, self._vfid, self._entries = volume, vfid, entries
        self._current: ZipSource | None = None

    async def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            await current.close()

    async def items(self) -> AsyncIterator[ZipItem]:
        for entry in self._entries:
            rel = RelPath.parse(entry.path)
            prefix = os.fsencode(str(rel))
            try:
                source = await self._open(rel, entry, prefix)
            except FileNotFound:
                continue  # gone since it was looked up
            self._current = source
            try:
                async for item in source.items():
                    yield item
            finally:
                await self.close()

    async def _open(self, rel: RelPath, entry: DirEntry, prefix: bytes) -> ZipSource:
        local = await self._volume.local_file(self._vfid, rel)
        if local is None:  # an object store: listed and read through the volume
            if entry.type is DirEntryType.DIRECTORY:
                return _Prefixed(prefix + b"/", VolumeTree(self._volume, self._vfid, rel))
            mtime = entry.stat.modified.timestamp()
            item = ZipItem(prefix, False, entry.stat.mode or 0o644, mtime)
            item.chunks = partial(_volume_chunks, self._volume, self._vfid, rel)
            return _One(item, None)
        if local.is_dir:
            top = ZipItem(prefix + b"/", True, local.stat.st_mode, local.stat.st_mtime)
            return _Prefixed(prefix + b"/", LocalTree(local.fd, self._volume.run_blocking), top)
        item = ZipItem(prefix, False, local.stat.st_mode, local.stat.st_mtime)
        item.chunks = partial(_fd_chunks, self._volume.run_blocking, local.fd)
        return _One(item, local.fd)


class _One:
    """One entry (a file), its descriptor closed with it."""

    def __init__(self, item: ZipItem, fd: int | None) -> None:
        self._item, self._fd = item, fd

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def items(self) -> AsyncIterator[ZipItem]:
        yield self._item


class _Prefixed:
    """A tree's entries under a prefix (the directory's own path), the directory first."""

    def __init__(self, prefix: bytes, tree: ZipSource, top: ZipItem | None = None) -> None:
        self._prefix, self._tree, self._top = prefix, tree, top

    async def close(self) -> None:
        await self._tree.close()

    async def items(self) -> AsyncIterator[ZipItem]:
        if self._top is not None:
            yield self._top
        async for item in self._tree.items():
            item.name = self._prefix + item.name
            yield item


async def _fd_chunks(run: Runner, fd: int) -> AsyncIterator[tuple[bytes, int]]:
    offset, crc = 0, 0
    while True:
        chunk, crc = await run(_read_crc, fd, offset, crc)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk, crc
