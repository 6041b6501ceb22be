"""Storage statistics and health as a user sees them: only volumes and vfolders it may read.

Per vfolder: objects (files), bytes, the quota that applies (the vfolder's own limit or its quota
scope's, whichever is smaller) and the caller's permission; per volume: capacity, used and free
space.  Asked for one vfolder, the answer also names its largest directories, found by a walk
bounded to ``WALK_LIMIT`` entries (``partial`` says when the walk stopped early).  Health probes
each volume the caller can see, each within ``PROBE_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..core.paths import RelPath
from ..core.records import Permission, VFolderRecord
from ..core.types import DirEntryType, VFolderID
from ..volumes.abc import AbstractVolume
from ..volumes.registry import VolumeRegistry
from .access import AccessService, Actor
from .usage import UsageService
from .vfolders import VFolderService

WALK_LIMIT = 200_000
LARGEST = 8
PROBE_TIMEOUT = 5.0
CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class StatsService:
    access: AccessService
    vfolders: VFolderService
    volumes: VolumeRegistry
    usage: UsageService

    async def stats(
        self, actor: Actor, only: tuple[str, VFolderID] | None = None
    ) -> dict[str, Any]:
        return await storage_stats(self, actor, only)

    async def health(self, actor: Actor) -> dict[str, Any]:
        return await storage_health(self, actor)


StatsDeps = StatsService  # what the functions below are given


async def _visible(
    deps: StatsDeps, actor: Actor, only: tuple[str, VFolderID] | None
) -> list[tuple[VFolderRecord, Permission]]:
    if only is not None:
        volume, vfid = only
        await deps.access.authorize(actor, volume, vfid, Permission.RO)
        grant = await deps.access.effective_for(actor, volume, vfid)
        return [(await deps.vfolders.registered(volume, vfid), grant)]
    return await deps.access.visible_to(actor)


async def storage_stats(
    deps: StatsDeps, actor: Actor, only: tuple[str, VFolderID] | None = None
) -> dict[str, Any]:
    """``only``: one (volume, vfid) the caller may read, with its largest directories."""
    visible = await _visible(deps, actor, only)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(record: VFolderRecord, grant: Permission) -> dict[str, Any]:
        async with limit:
            return await _vfolder_stats(deps, record, grant, detail=only is not None)

    vfolders = await asyncio.gather(*(one(r, g) for r, g in visible))
    names = sorted({r.volume for r, _ in visible})
    volumes = await asyncio.gather(*(_volume_stats(deps.volumes.get(n)) for n in names))
    return {"volumes": list(volumes), "vfolders": list(vfolders)}


async def _vfolder_stats(
    deps: StatsDeps, record: VFolderRecord, grant: Permission, *, detail: bool
) -> dict[str, Any]:
    vfid = VFolderID.parse(record.vfid)
    volume = deps.volumes.get(record.volume)
    usage = await deps.usage.get(record.volume, vfid)
    scope = await volume.quota_model.describe_quota_scope(vfid.quota_scope_id)
    limits = [
        (record.limit_bytes, "vfolder"),
        (scope.limit_bytes if scope is not None else None, "quota-scope"),
    ]
    applied = min(((b, s) for b, s in limits if b is not None), default=(None, None))
    body: dict[str, Any] = {
        "volume": record.volume,
        "vfid": record.vfid,
        "permission": grant.label,
        "objects": usage.file_count,
        "bytes": usage.used_bytes,
        "quota_bytes": applied[0],
        "quota_source": applied[1],
    }
    if detail:
        body["largest_directories"], body["partial"] = await largest_directories(volume, vfid)
    return body


async def largest_directories(
    volume: AbstractVolume, vfid: VFolderID, *, top: int = LARGEST, walk_limit: int = WALK_LIMIT
) -> tuple[list[dict[str, Any]], bool]:
    """Directories of the vfolder by the bytes of the files below them (any depth), largest
    first; and whether the walk stopped at ``walk_limit`` entries."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seen = 0
    async for entry in volume.scandir(vfid, RelPath(()), recursive=True, limit=walk_limit + 1):
        seen += 1
        if seen > walk_limit:
            break
        if entry.type is not DirEntryType.FILE:
            continue
        parts = entry.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            bucket = totals["/".join(parts[:depth])]
            bucket[0] += entry.stat.size
            bucket[1] += 1
    largest = heapq.nlargest(top, totals.items(), key=lambda kv: (kv[1][0], kv[0]))
    rows = [{"path": p, "bytes": b, "objects": n} for p, (b, n) in largest]
    return rows, seen > walk_limit


async def _volume_stats(volume: AbstractVolume) -> dict[str, Any]:
    body: dict[str, Any] = {"name": volume.name, "backend": volume.backend_name}
    try:
        fs = await asyncio.wait_for(volume.get_fs_usage(), PROBE_TIMEOUT)
    except Exception as e:  # a volume that cannot say is reported, not an error of the request
        return {**body, "status": "down", "detail": _describe(e)}
    free = max(0, fs.capacity_bytes - fs.used_bytes)
    return {
        **body,
        "status": "ok",
        "capacity_bytes": fs.capacity_bytes,
        "used_bytes": fs.used_bytes,
        "free_bytes": free,
    }


async def storage_health(deps: StatsDeps, actor: Actor) -> dict[str, Any]:
    """Each volume the caller can see: reachable (``ok``) or ``down`` with the reason."""
    names = sorted({r.volume for r, _ in await deps.access.visible_to(actor)})
    probes = await asyncio.gather(*(_volume_stats(deps.volumes.get(n)) for n in names))
    volumes = [
        {k: v for k, v in p.items() if k in ("name", "backend", "status", "detail")} for p in probes
    ]
    down = [v["name"] for v in volumes if v["status"] != "ok"]
    return {"status": "degraded" if down else "ok", "down": down, "volumes": volumes}


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:.0f}s"
    return type(error).__name__
