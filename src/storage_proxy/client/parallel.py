"""Large files in parallel parts: a tus upload as N partial uploads joined by a final one
(concatenation), a download as N ranged GETs into a pre-sized file.

Each part resumes on its own.  An upload's parts and their URLs live in the same state file as a
single upload's URL (a re-run asks the server each part's offset; a part the server no longer
has starts again); a download keeps its parts' progress beside ``LOCAL.part`` in
``LOCAL.part.json``, recorded only after the bytes are written.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from . import transfer
from .transfer import TUS, Progress, Target, TransferError, UploadState

#: Below this size one stream; above it up to ``MAX_AUTO_PARALLEL`` parts, one per half of it.
PARALLEL_THRESHOLD = 64 << 20
MAX_AUTO_PARALLEL = 4
#: Part boundaries fall on this (a filesystem can then share a joined part's blocks, reflink).
ALIGN = 1 << 20
_SAVE_EVERY = 16 << 20  # a download part records its progress this often

Starter = Callable[[int, int], None]


def choose_parallel(size: int, requested: int | None) -> int:
    """How many parts: ``requested`` (at most one per ``ALIGN`` bytes), or chosen by size."""
    most = max(1, -(-size // ALIGN))
    if requested is not None:
        return max(1, min(requested, most))
    if size < PARALLEL_THRESHOLD:
        return 1
    return min(MAX_AUTO_PARALLEL, size // (PARALLEL_THRESHOLD // 2), most)


def split(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges [start, end) covering ``size``, each but the last a multiple of ALIGN."""
    per_part = -(-size // parts)
    step = -(-per_part // ALIGN) * ALIGN
    return [(start, min(size, start + step)) for start in range(0, size, step)]


@dataclass
class Part:
    start: int
    end: int
    url: str | None = None  # an upload part's tus URL
    done: int = 0  # a download part's bytes on disk


async def _all(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run together; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


# -- upload ----------------------------------------------------------------------------------------
async def upload(
    session: aiohttp.ClientSession,
    local: Path,
    target: Target,
    *,
    state: UploadState,
    parallel: int | None = None,
    chunk_size: int = transfer.DEFAULT_CHUNK,
    on_start: Starter = lambda offset, total: None,
    progress: Progress = lambda n: None,
) -> dict[str, Any]:
    """Upload (or resume) ``local`` in parallel partial uploads, or as one stream when it is
    small, ``parallel`` is 1, or a single-stream upload of it is being resumed."""
    size = (await asyncio.to_thread(local.stat)).st_size
    key = await asyncio.to_thread(state.key, local, target)
    saved = await asyncio.to_thread(state.get, key)
    if isinstance(saved, dict) and saved.get("parts"):
        parts = [Part(**p) for p in saved["parts"]]
    elif (count := choose_parallel(size, parallel)) > 1 and not isinstance(saved, str):
        parts = [Part(start, end) for start, end in split(size, count)]
    else:
        return await transfer.upload(
            session, local, target, state=state, chunk_size=chunk_size,
            on_start=on_start, progress=progress,
        )  # fmt: skip
    offsets = await _all([_part_offset(session, target, p) for p in parts])
    await asyncio.to_thread(state.put, key, {"parts": [asdict(p) for p in parts]})
    on_start(sum(offsets), size)
    await _all(
        [
            transfer.send_range(
                session, local, str(p.url), p.start, off, p.end - p.start, chunk_size, progress
            )
            for p, off in zip(parts, offsets, strict=True)
        ]
    )
    await _final(session, target, [str(p.url) for p in parts])
    await asyncio.to_thread(state.put, key, None)
    return await transfer.verify_remote(session, target, local)


async def _part_offset(session: aiohttp.ClientSession, target: Target, part: Part) -> int:
    """Where a part resumes: its upload's offset, or 0 in a new partial upload."""
    if part.url is not None:
        offset = await transfer.resume_offset(session, part.url)
        if offset is not None:
            return offset
    part.url = await transfer.create_upload(
        session, target, part.end - part.start, **{"Upload-Concat": "partial"}
    )
    return 0


async def _final(session: aiohttp.ClientSession, target: Target, urls: list[str]) -> None:
    relative = [u.removeprefix(target.base_url) for u in urls]
    headers = {
        **TUS,
        "Upload-Concat": "final;" + " ".join(relative),
        "Upload-Metadata": transfer.upload_metadata(target),
    }
    async with session.post(f"{target.base_url}/upload", headers=headers) as resp:
        if resp.status != 201:
            raise TransferError(f"joining the parts failed: {await transfer.problem(resp)}")


# -- download --------------------------------------------------------------------------------------
async def download(
    session: aiohttp.ClientSession,
    target: Target,
    local: Path,
    *,
    parallel: int | None = None,
    on_start: Starter = lambda offset, total: None,
    progress: Progress = lambda n: None,
) -> dict[str, Any]:
    """Download (or resume) ``target`` into ``local`` with ranged GETs in parallel, into
    ``local.part`` sized up front; verified by sha256 before it is renamed."""
    meta = await transfer.call_json(session, "GET", target.metadata_url, "reading the metadata")
    size, sha = int(meta["size"]), meta.get("sha256")
    part_file = local.with_name(local.name + ".part")
    record = local.with_name(local.name + ".part.json")
    parts = await asyncio.to_thread(_saved_parts, record, part_file, size, sha)
    if parts is None:
        count = choose_parallel(size, parallel)
        if count <= 1:
            return await transfer.download(
                session, target, local, on_start=on_start, progress=progress
            )
        parts = [Part(start, end) for start, end in split(size, count)]
        await asyncio.to_thread(_presize, part_file, size)
    on_start(sum(p.done for p in parts), size)
    fd = await asyncio.to_thread(os.open, part_file, os.O_WRONLY | os.O_CLOEXEC)
    try:
        save = _saver(record, size, sha, parts)
        await _all([_fetch(session, target, fd, p, progress, save) for p in parts])
    finally:
        os.close(fd)
    if sha:
        actual = await asyncio.to_thread(transfer.sha256_of, part_file)
        if actual != sha:
            await asyncio.to_thread(_remove, part_file, record)
            raise TransferError(f"checksum mismatch: got {actual}, the server has {sha}")
    await asyncio.to_thread(part_file.replace, local)
    await asyncio.to_thread(_remove, record)
    return dict(meta)


def _saved_parts(record: Path, part_file: Path, size: int, sha: str | None) -> list[Part] | None:
    """The parts of an interrupted download of this very file (same size and sha256)."""
    try:
        saved = json.loads(record.read_text())
        if part_file.stat().st_size != size or (saved["size"], saved["sha256"]) != (size, sha):
            return None
        return [Part(**p) for p in saved["parts"]]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _presize(part_file: Path, size: int) -> None:
    with open(part_file, "wb") as f:
        f.truncate(size)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _saver(record: Path, size: int, sha: str | None, parts: list[Part]) -> Callable[[], None]:
    def save() -> None:
        tmp = record.with_name(record.name + ".tmp")
        tmp.write_text(
            json.dumps({"size": size, "sha256": sha, "parts": [asdict(p) for p in parts]})
        )
        tmp.replace(record)

    return save


async def _fetch(
    session: aiohttp.ClientSession,
    target: Target,
    fd: int,
    part: Part,
    progress: Progress,
    save: Callable[[], None],
) -> None:
    """One part's missing bytes by a ranged GET, written in place."""
    if part.start + part.done >= part.end:
        return
    headers = {"Range": f"bytes={part.start + part.done}-{part.end - 1}"}
    async with session.get(target.files_url, headers=headers) as resp:
        if resp.status != 206:
            raise TransferError(f"ranged download failed: {await transfer.problem(resp)}")
        unsaved = 0
        async for chunk in resp.content.iter_chunked(transfer.READ_CHUNK):
            await asyncio.to_thread(_write_at, fd, chunk, part.start + part.done)
            part.done += len(chunk)
            unsaved += len(chunk)
            progress(len(chunk))
            if unsaved >= _SAVE_EVERY:
                unsaved = 0
                save()  # a few hundred bytes, on the loop: parts never save at once
    save()
    if part.start + part.done != part.end:
        raise TransferError(f"the download of bytes {part.start}-{part.end - 1} broke off")


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


__all__ = ["Part", "choose_parallel", "download", "split", "upload"]
