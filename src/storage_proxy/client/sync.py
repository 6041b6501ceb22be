"""``storage-proxy-client sync``: what differs between a local directory and a vfolder (below a
prefix), in either direction, compared by size and then by sha256.

A remote place is written ``VOLUME:VFID[/PREFIX]`` (the volume and vfid as the other commands
take them, e.g. ``vol1:user:1111…/aabb…/datasets/cifar``); the other argument is a local
directory. Only regular files are synced; empty directories are not created.

Local symbolic links are never followed: a link (to a file or to a directory, inside the tree or
out of it) is skipped and reported, never uploaded, never descended into; when downloading, a
link in the way of a file is an error for that file, and directories are created one level at a
time, refusing a link found where a directory should be. Other non-regular files (FIFOs,
sockets, devices) are skipped and reported as well. The LOCAL argument itself is taken as named.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from . import transfer

T = TypeVar("T")
U = TypeVar("U")

_REMOTE = re.compile(
    r"^(?P<volume>[^/:]+):(?P<vfid>[A-Za-z_]+:[0-9A-Fa-f-]+/[0-9A-Fa-f-]+)(?:/(?P<prefix>.*))?$"
)


@dataclass(frozen=True)
class Remote:
    """A place in a vfolder: ``prefix`` is "" (the root) or a path without surrounding slashes."""

    volume: str
    vfid: str
    prefix: str

    def path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def target(self, base_url: str, rel: str) -> transfer.Target:
        return transfer.Target(base_url, self.volume, self.vfid, self.path(rel))

    def __str__(self) -> str:
        return f"{self.volume}:{self.vfid}" + (f"/{self.prefix}" if self.prefix else "")


def parse_remote(arg: str) -> Remote | None:
    """``VOLUME:VFID[/PREFIX]`` as a Remote, or None when ``arg`` is not written so."""
    m = _REMOTE.match(arg)
    if m is None:
        return None
    prefix = "/".join(p for p in (m["prefix"] or "").split("/") if p)
    return Remote(m["volume"], m["vfid"], prefix)


@dataclass
class LocalTree:
    """The regular files below a local directory (relative POSIX path → size), and what was
    skipped (relative path → why)."""

    files: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def walk_local(root: Path) -> LocalTree:
    """Every regular file below ``root``, never following a symbolic link."""
    tree = LocalTree()
    if not root.exists():
        return tree
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    tree.skipped[rel] = "symbolic link, not followed"
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    tree.files[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    tree.skipped[rel] = "not a regular file"
    return tree


def sha256_of(path: Path) -> str:
    """The file's sha256, read without following a symbolic link at ``path``."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        while chunk := f.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def list_remote(
    session: aiohttp.ClientSession, base_url: str, remote: Remote
) -> dict[str, int]:
    """The files below the remote place (path relative to it → size); none when it is absent."""
    prefix = f"{remote.prefix}/" if remote.prefix else ""
    try:
        found = await transfer.list_files(session, base_url, remote.volume, remote.vfid, prefix)
    except transfer.TransferError as e:
        if prefix and "404" in str(e):
            return {}
        raise
    return {
        f["path"][len(prefix) :]: int(f["size"])
        for f in found
        if f.get("type", "FILE") == "FILE" and f["path"].startswith(prefix)
    }


async def remote_sha256(
    session: aiohttp.ClientSession, base_url: str, remote: Remote, rel: str
) -> str | None:
    meta = await transfer.call_json(
        session, "GET", remote.target(base_url, rel).metadata_url, f"reading {rel}'s metadata"
    )
    sha = meta.get("sha256")
    return str(sha) if sha else None


async def bounded_map(
    jobs: int, func: Callable[[T], Awaitable[U]], items: Iterable[T]
) -> list[U | BaseException]:
    """``func`` over ``items``, at most ``jobs`` at a time; an item's exception is its result."""
    gate = asyncio.Semaphore(max(1, jobs))

    async def one(item: T) -> U:
        async with gate:
            return await func(item)

    return list(await asyncio.gather(*(one(i) for i in items), return_exceptions=True))


Kind = Literal["upload", "download", "delete"]


@dataclass(frozen=True)
class Action:
    kind: Kind
    rel: str
    size: int
    reason: str


@dataclass
class Plan:
    """What a sync will do, what it leaves as it is, and what it skipped or could not compare."""

    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def of(self, kind: Kind) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]


@dataclass(frozen=True)
class Sides:
    """Both ends of a sync: the source's and the destination's files (path → size)."""

    source: dict[str, int]
    destination: dict[str, int]


async def make_plan(
    sides: Sides,
    kind: Kind,
    same_content: Callable[[str], Awaitable[bool]],
    *,
    jobs: int,
    delete: bool,
    keep: Iterable[str] = (),
) -> Plan:
    """Compare by size, then (same size) by ``same_content``; extraneous destination files are
    deleted with ``delete`` unless they are in ``keep`` or below it (names the source skipped,
    such as a link to a directory: what is there is left alone)."""
    plan = Plan()
    candidates: list[str] = []
    for rel, size in sorted(sides.source.items()):
        there = sides.destination.get(rel)
        if there is None:
            plan.actions.append(Action(kind, rel, size, "new"))
        elif there != size:
            plan.actions.append(Action(kind, rel, size, f"size {there} → {size}"))
        else:
            candidates.append(rel)
    outcomes = await bounded_map(jobs, same_content, candidates)
    for rel, same in zip(candidates, outcomes, strict=True):
        if isinstance(same, BaseException):
            plan.failed[rel] = f"cannot compare: {same}"
        elif same:
            plan.unchanged += 1
        else:
            plan.actions.append(Action(kind, rel, sides.source[rel], "content differs"))
    kept = tuple(keep)
    if delete:
        for rel in sorted(set(sides.destination) - set(sides.source)):
            if not any(rel == k or rel.startswith(k + "/") for k in kept):
                plan.actions.append(Action("delete", rel, sides.destination[rel], "not in source"))
    return plan


def describe(action: Action) -> str:
    arrow = {"upload": "↑", "download": "↓", "delete": "✗"}[action.kind]
    return f"{arrow} {action.kind:<8} {action.rel}  ({action.reason}, {action.size} bytes)"


def safe_rel(rel: str) -> str:
    """A relative path from the server checked before it names a local file."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise transfer.TransferError(f"refusing the remote name {rel!r}")
    return rel


def make_parents(root: Path, rel: str) -> Path:
    """The local path of ``rel``, its directories created one by one below ``root``, none of
    them a symbolic link (one found is an error, never followed)."""
    current = root
    for part in safe_rel(rel).split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise transfer.TransferError(f"{current} is a symbolic link; not followed")
        if not stat.S_ISDIR(st.st_mode):
            raise transfer.TransferError(f"{current} is in the way (not a directory)")
    path = current / rel.split("/")[-1]
    if path.is_symlink():
        raise transfer.TransferError(f"{path} is a symbolic link; not replaced")
    return path


def summary_of(plan: Plan, done: dict[Kind, int], moved: int, errors: dict[str, str]) -> str:
    parts = [
        f"{done.get('upload', 0)} uploaded" if plan.of("upload") else "",
        f"{done.get('download', 0)} downloaded" if plan.of("download") else "",
        f"{moved} bytes" if moved else "",
        f"{done.get('delete', 0)} deleted" if plan.of("delete") else "",
        f"{plan.unchanged} unchanged",
        f"{len(plan.skipped)} skipped" if plan.skipped else "",
        f"{len(errors)} failed" if errors else "",
    ]
    return "sync: " + ", ".join(p for p in parts if p)


def error_lines(errors: dict[str, str]) -> list[str]:
    return [f"  {rel}: {why}" for rel, why in sorted(errors.items())]


def problem_text(body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('status', '')} {body.get('code', '')}: {body.get('detail', '')}".strip()
    return str(body)
