"""Small writes on POSIX volumes in one step: a body that has arrived whole (at most
``WHOLE_MAX`` bytes) is staged, written, stamped, published and described in one blocking call,
instead of one thread hop for each of those steps.

The steps are the write path's own (the same staging outside user paths, locked before it is
named; the same publish that keeps what it replaces as a version; the same quota reservation,
taken before the call): only the hops between them go.  Many small files -- a batch upload, a
sync, a dataset of label files -- spend most of their time in those hops.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core.errors import QuotaExceeded, StorageProxyError
from ..core.files import WholeFile, WriteOptions
from ..core.paths import RelPath
from ..core.types import FileMeta, VFolderID
from . import filemeta
from . import posix_fs as fs
from .abc import AbstractVolume
from .beneath import errors_as, opened
from .staging import write_all

if TYPE_CHECKING:
    from .posix import BasePosixVolume

#: Bodies up to this size are written in one step once they have arrived whole.
WHOLE_MAX = 256 << 10


async def gather_whole(
    stream: AsyncIterator[bytes], limit: int = WHOLE_MAX
) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """``(body, stream)``: the whole body if it ends within ``limit`` bytes, else None and a
    stream that yields what was read ahead, then the rest."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None, _chain(chunks, stream)
    return b"".join(chunks), _chain([], stream)


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


async def write_if_whole(
    volume: BasePosixVolume,
    vfid: VFolderID,
    relpath: RelPath,
    stream: AsyncIterator[bytes],
    options: WriteOptions,
) -> tuple[FileMeta | None, AsyncIterator[bytes]]:
    """``(meta, _)`` once a body that arrived whole is written; else ``(None, stream)`` to go
    on with (what was read ahead first).  A declared size is held before a byte is read, so
    one that cannot fit is refused without reading the body."""
    async with volume._reservation(vfid) as res:
        if options.size_hint:
            await res.reserve(options.size_hint)
        body, stream = await gather_whole(stream)
        if body is None:
            return None, stream
        await res.consume(len(body))
        st, record = await volume.run_blocking(_write, volume, vfid, relpath, body, options)
    return await _described(volume, vfid, WholeFile(relpath, body, options), st, record), stream


async def write_group(
    volume: BasePosixVolume, vfid: VFolderID, files: Sequence[WholeFile]
) -> list[FileMeta | StorageProxyError]:
    """Small files that arrived whole, stored under one quota hold in one blocking call (each
    through the steps of :func:`_write`, each refusal its own outcome).  A group that does not
    fit the quota as a whole is stored one file at a time, so each file that fits is stored."""
    total = sum(len(f.body) for f in files)
    fits = True
    try:
        async with volume._reservation(vfid) as res:
            try:
                await res.reserve(total)
            except QuotaExceeded:
                fits = False
                raise
            written = await volume.run_blocking(_write_each, volume, vfid, files)
            pairs = list(zip(files, written, strict=True))
            await res.consume(sum(len(f.body) for f, w in pairs if isinstance(w, tuple)))
    except QuotaExceeded:
        if fits:
            raise
        return await AbstractVolume.write_whole(volume, vfid, files)
    return [
        w if isinstance(w, StorageProxyError) else await _described(volume, vfid, f, *w)
        for f, w in pairs
    ]


async def _described(
    volume: BasePosixVolume, vfid: VFolderID, f: WholeFile, st: Any, record: dict[str, Any]
) -> FileMeta:
    """The written file's metadata (its record put in the sidecar where xattrs are off)."""
    options = f.options
    if record.pop("_sidecar", False) and (
        options.checksums or options.content_type or options.tags
    ):
        await volume.deps.books.put_file_meta(volume.name, str(vfid), str(f.relpath), record)
    return filemeta.to_file_meta(st, record)


def _write_each(
    volume: BasePosixVolume, vfid: VFolderID, files: Sequence[WholeFile]
) -> list[tuple[Any, dict[str, Any]] | StorageProxyError]:
    """Blocking: :func:`_write` for each file, below one held vfolder root."""
    out: list[tuple[Any, dict[str, Any]] | StorageProxyError] = []
    try:
        with volume._root(vfid) as root:
            for f in files:
                try:
                    out.append(_write_below(volume, vfid, root, f.relpath, f.body, f.options))
                except StorageProxyError as e:
                    out.append(e)
    except StorageProxyError as e:  # the vfolder itself (gone): the same for every file left
        out += [e] * (len(files) - len(out))
    return out


def _write(
    volume: BasePosixVolume,
    vfid: VFolderID,
    relpath: RelPath,
    body: bytes,
    options: WriteOptions,
) -> tuple[Any, dict[str, Any]]:
    """Blocking: the write path's steps back to back; the published file's stat and record."""
    with volume._root(vfid) as root:
        return _write_below(volume, vfid, root, relpath, body, options)


def _write_below(
    volume: BasePosixVolume,
    vfid: VFolderID,
    root: int,
    relpath: RelPath,
    body: bytes,
    options: WriteOptions,
) -> tuple[Any, dict[str, Any]]:
    digests_of = fs.hashers() if options.checksums else []
    with errors_as(relpath):
        parent, name = volume._write_target(root, relpath, options.overwrite)
        with opened(parent):
            staged = volume._open_staged(parent)
            area, fd, sname = staged
            try:
                write_all(fd, [body], digests_of, 0)
                record = stamp_and_publish(
                    volume, vfid, relpath, staged, parent, name, digests_of, options
                )
                return os.fstat(fd), record
            finally:
                fs.leave_staged(staged)


def stamp_and_publish(
    volume: BasePosixVolume,
    vfid: VFolderID,
    relpath: RelPath,
    staged: tuple[int, int, str],
    parent: int,
    name: str,
    digests_of: list[Any],
    options: WriteOptions,
) -> dict[str, Any]:
    """Blocking, for both write paths: give the written staged file its record, then publish it
    at ``(parent, name)`` keeping what it replaces as a version; the record."""
    area, fd, sname = staged
    digests = [h.hexdigest() for h in digests_of] or [None, None]
    record = volume._stamp(
        fd,
        sha256=digests[0],
        md5=digests[1],
        content_type=options.content_type,
        tags=dict(options.tags or {}),
        mode=options.mode,
    )
    publish = partial(fs.publish_staged, area, sname, fd, parent, name, options.overwrite)
    keep = options.keep if options.overwrite else None
    volume._replace(vfid, relpath, keep, "overwrite", (parent, name), publish)
    return record
