"""Carrying out a sync plan (:mod:`.sync`): many files in flight, one progress bar, an error
for each file that failed.

Uploads: files up to ``batch_max_file`` go in tar streams to the batch route (one request for
hundreds of them; the server answers each file's sha256, checked against the one computed while
the tar was made), larger ones through tus, resumable. Downloads: one GET per file into a
``.part`` renamed once its sha256 is verified. Deletions: one DELETE (or unlink) per file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import sys
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from . import transfer
from .sync import (
    Action,
    Kind,
    LocalTree,
    Plan,
    Remote,
    Sides,
    bounded_map,
    list_remote,
    make_parents,
    make_plan,
    problem_text,
    remote_sha256,
    sha256_of,
    walk_local,
)

BATCH_MAX_FILE = 1 << 20  #: files up to this size go in batches
BATCH_MAX_BYTES = 32 << 20  #: a batch's payload, at most
BATCH_MAX_FILES = 2000
_SEND_CHUNK = 256 << 10


@dataclass
class Options:
    base_url: str
    jobs: int = 8
    delete: bool = False
    dry_run: bool = False
    quiet: bool = False
    batch_max_file: int = BATCH_MAX_FILE
    state: transfer.UploadState | None = None


class Bar:
    """One bar for the whole sync: bytes moved, and files done out of all in the plan."""

    def __init__(self, total_bytes: int, total_files: int, quiet: bool) -> None:
        self.files_total = total_files
        self.files_done = 0
        self.moved = 0
        self.bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="sync",
            disable=quiet,
            file=sys.stderr,
        )
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"{self.files_done}/{self.files_total} files", refresh=False)

    def update(self, n: int) -> None:
        self.moved += n
        self.bar.update(n)

    def file_done(self, count: int = 1) -> None:
        self.files_done += count
        self._show()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


@dataclass
class Outcome:
    done: dict[Kind, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def ok(self, kind: Kind, count: int = 1) -> None:
        self.done[kind] = self.done.get(kind, 0) + count


def _same_content(
    session: aiohttp.ClientSession, local: Path, remote: Remote, opts: Options
) -> Callable[[str], Awaitable[bool]]:
    """Whether a file of the same size on both sides has the same sha256 (the local one
    computed in a thread, the remote one from the file's metadata)."""

    async def same(rel: str) -> bool:
        mine = asyncio.to_thread(sha256_of, local / rel)
        theirs = remote_sha256(session, opts.base_url, remote, rel)
        a, b = await asyncio.gather(mine, theirs)
        return a == b

    return same


async def plan_upload(
    session: aiohttp.ClientSession, local: Path, remote: Remote, opts: Options
) -> Plan:
    tree: LocalTree = await asyncio.to_thread(walk_local, local)
    there = await list_remote(session, opts.base_url, remote)

    plan = await make_plan(
        Sides(tree.files, there),
        "upload",
        _same_content(session, local, remote, opts),
        jobs=opts.jobs,
        delete=opts.delete,
        keep=tree.skipped,
    )
    plan.skipped = tree.skipped
    return plan


async def plan_download(
    session: aiohttp.ClientSession, remote: Remote, local: Path, opts: Options
) -> Plan:
    there = await list_remote(session, opts.base_url, remote)
    tree: LocalTree = await asyncio.to_thread(walk_local, local)
    in_the_way = {rel: why for rel, why in tree.skipped.items() if rel in there}

    source = {rel: size for rel, size in there.items() if rel not in in_the_way}
    plan = await make_plan(
        Sides(source, tree.files),
        "download",
        _same_content(session, local, remote, opts),
        jobs=opts.jobs,
        delete=opts.delete,
    )
    plan.skipped = {rel: why for rel, why in tree.skipped.items() if rel not in in_the_way}
    plan.failed.update({rel: f"a local {why} is in the way" for rel, why in in_the_way.items()})
    return plan


def _batches(actions: list[Action], jobs: int) -> list[list[Action]]:
    """Small files split in batches: at least ``jobs`` of them when there are enough files (so
    they are in flight together), each within the batch limits."""
    if not actions:
        return []
    total = sum(a.size for a in actions)
    count = max(
        min(jobs, len(actions)),
        -(-total // BATCH_MAX_BYTES),
        -(-len(actions) // BATCH_MAX_FILES),
    )
    return [actions[i::count] for i in range(count)]


def _tar_of(local: Path, actions: list[Action]) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """The files as one tar (pax names), with each one's sha256 and what could not be read."""
    buf = io.BytesIO()
    shas: dict[str, str] = {}
    errors: dict[str, str] = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for a in actions:
            try:
                fd = os.open(local / a.rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                errors[a.rel] = f"cannot open: {e.strerror or e}"
                continue
            with open(fd, "rb") as f:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    errors[a.rel] = "not a regular file"
                    continue
                data = f.read()
            info = tarfile.TarInfo(a.rel)
            info.size, info.mtime, info.mode = len(data), int(st.st_mtime), st.st_mode & 0o777
            tar.addfile(info, io.BytesIO(data))
            shas[a.rel] = hashlib.sha256(data).hexdigest()
    return buf.getvalue(), shas, errors


async def _chunks_with_progress(
    data: bytes, payload: int, progress: Callable[[int], None]
) -> AsyncIterator[bytes]:
    """The body in pieces; the payload's share of each piece is reported as it goes."""
    reported = 0
    for start in range(0, len(data), _SEND_CHUNK):
        piece = data[start : start + _SEND_CHUNK]
        yield piece
        share = payload * (start + len(piece)) // max(1, len(data)) - reported
        reported += share
        progress(share)


async def upload_batch(
    session: aiohttp.ClientSession,
    local: Path,
    remote: Remote,
    actions: list[Action],
    opts: Options,
    bar: Bar,
) -> dict[str, str]:
    """One tar of small files to the batch route; the errors of those that failed."""
    body, shas, errors = await asyncio.to_thread(_tar_of, local, actions)
    url = f"{opts.base_url}/api/v1/vfolders/{remote.volume}/{remote.vfid}/batch"
    params = {"path": remote.prefix} if remote.prefix else {}
    payload = sum(a.size for a in actions if a.rel in shas)
    data = _chunks_with_progress(body, payload, bar.update)
    headers = {"Content-Type": "application/x-tar", "Content-Length": str(len(body))}
    result = await transfer.call_json(
        session, "POST", url, "the batch upload", data=data, params=params, headers=headers
    )
    seen = set()
    for item in result["results"]:
        rel = item["name"]
        seen.add(rel)
        if "error" in item:
            errors[rel] = problem_text(item["error"])
        elif rel in shas and item.get("sha256") != shas[rel]:
            errors[rel] = f"stored sha256 {item.get('sha256')} is not the local {shas[rel]}"
    aborted = result.get("aborted")
    for rel in shas:
        if rel not in seen:
            errors[rel] = f"not stored: {problem_text(aborted) if aborted else 'no result'}"
    bar.file_done(len(actions))
    return errors


async def _upload_one(
    session: aiohttp.ClientSession, local: Path, remote: Remote, a: Action, opts: Options, bar: Bar
) -> None:
    path = local / a.rel
    if path.is_symlink():
        raise transfer.TransferError("became a symbolic link; not followed")
    state = opts.state or transfer.UploadState(transfer.default_state_file())
    try:
        await transfer.upload(
            session, path, remote.target(opts.base_url, a.rel), state=state, progress=bar.update
        )
    finally:
        bar.file_done()


async def _download_one(
    session: aiohttp.ClientSession, remote: Remote, local: Path, a: Action, opts: Options, bar: Bar
) -> None:
    try:
        path = await asyncio.to_thread(make_parents, local, a.rel)
        part = path.with_name(path.name + ".part")
        if part.is_symlink():
            part.unlink()
        target = remote.target(opts.base_url, a.rel)
        await transfer.download(session, target, path, progress=bar.update)
    finally:
        bar.file_done()


async def _delete_one(
    session: aiohttp.ClientSession,
    remote: Remote,
    local: Path | None,
    a: Action,
    opts: Options,
    bar: Bar,
) -> None:
    """A remote file, or with ``local`` a file below that directory (never through a link)."""
    try:
        if local is not None:
            path = await asyncio.to_thread(make_parents, local, a.rel)
            await asyncio.to_thread(path.unlink)
        else:
            url = remote.target(opts.base_url, a.rel).files_url
            await transfer.call_json(session, "DELETE", url, "deleting it")
    finally:
        bar.file_done()


async def execute(
    session: aiohttp.ClientSession,
    plan: Plan,
    local: Path,
    remote: Remote,
    opts: Options,
    bar: Bar,
    *,
    downloading: bool,
) -> Outcome:
    """Every action of the plan, ``opts.jobs`` requests in flight at most (deletions are of
    local files when ``downloading``)."""
    outcome = Outcome(errors=dict(plan.failed))
    small = [a for a in plan.of("upload") if a.size <= opts.batch_max_file]
    batches = _batches(small, opts.jobs)
    singles = [
        a for a in plan.actions if not (a.kind == "upload" and a.size <= opts.batch_max_file)
    ]

    async def run(work: list[Action] | Action) -> tuple[list[Action] | Action, Any]:
        if isinstance(work, list):
            return work, await upload_batch(session, local, remote, work, opts, bar)
        if work.kind == "upload":
            await _upload_one(session, local, remote, work, opts, bar)
        elif work.kind == "download":
            await _download_one(session, remote, local, work, opts, bar)
        else:
            await _delete_one(session, remote, local if downloading else None, work, opts, bar)
        return work, None

    jobs: list[list[Action] | Action] = [*batches, *singles]
    results = await bounded_map(opts.jobs, run, jobs)
    for work, result in zip(jobs, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, transfer.TransferError | OSError | aiohttp.ClientError):
                raise result
            for a in work if isinstance(work, list) else [work]:
                outcome.errors[a.rel] = str(result) or type(result).__name__
            continue
        if isinstance(work, list):
            failed: dict[str, str] = result[1]
            outcome.errors.update(failed)
            outcome.ok("upload", sum(1 for a in work if a.rel not in failed))
        else:
            outcome.ok(work.kind)
    return outcome
