"""Vfolder usage as the manager API reports it, shared by every node through the cache.

A usage figure of a large vfolder costs a tree walk; the manager asks for it often, and through
any node.  With Redis configured the figure one node computed serves every node for
``[cache] usage-ttl``; the periodic usage scan puts fresh figures in, and writes through the proxy
(uploads, deletes, moves) and vfolder deletion drop them on all nodes.  Writes made straight to
the storage (a compute session's mount) show up once the figure expires: usage is a report, not
an enforcement (quota enforcement counts for itself, see ``volumes/quota.py``).
"""

from __future__ import annotations

from ..core.types import VFolderID, VFolderUsage
from ..infra.cache import CacheKinds, SharedCache
from ..volumes.registry import VolumeRegistry


class UsageService:
    def __init__(
        self,
        volumes: VolumeRegistry,
        cache: SharedCache | None,
        kinds: CacheKinds,
    ) -> None:
        self._volumes = volumes
        self._cache = cache  # None without Redis: every read walks
        self._kinds = kinds

    async def get(self, volume_name: str, vfid: VFolderID) -> VFolderUsage:
        volume = self._volumes.get(volume_name)
        if self._cache is None:
            return await volume.get_usage(vfid)

        async def load() -> list[int]:
            return _figures(await volume.get_usage(vfid))

        figures = await self._cache.get(self._kinds.usage, f"{volume_name}/{vfid}", load)
        return VFolderUsage(*figures[:4])  # a figure cached by an older node has two numbers

    async def put(self, volume_name: str, vfid: VFolderID, usage: VFolderUsage) -> None:
        """A fresh figure (from a scan) replaces the cached one on every node."""
        if self._cache is not None:
            await self._cache.put(self._kinds.usage, f"{volume_name}/{vfid}", _figures(usage))

    async def changed(self, volume_name: str, vfid: VFolderID | str) -> None:
        """The proxy wrote into the vfolder: its cached figure is dropped everywhere."""
        if self._cache is not None:
            await self._cache.invalidate(self._kinds.usage, f"{volume_name}/{vfid}")


def _figures(usage: VFolderUsage) -> list[int]:
    return [usage.file_count, usage.used_bytes, usage.dir_count, usage.dir_bytes]
