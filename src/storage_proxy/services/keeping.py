"""A vfolder's ``versions = N``: how many earlier contents of each file it keeps (0: none, the
default), looked up for every write, move and delete, and handed to the volume as
:class:`KeepVersions` naming who replaced the file.

Writes are the hot path, so the setting is remembered for ``ttl`` seconds in this process; a
change made here takes effect at once, one made on another node within ``ttl``.
"""

from __future__ import annotations

import time

from ..core import caller
from ..core.errors import InvalidParameter
from ..core.files import KeepVersions
from ..core.types import VFolderID
from ..metadata.store import MetadataStore

MAX_VERSIONS = 1000
DEFAULT_TTL = 5.0


class VersionSettings:
    def __init__(self, metadata: MetadataStore, ttl: float = DEFAULT_TTL) -> None:
        self._metadata = metadata
        self._ttl = ttl
        self._known: dict[tuple[str, str], tuple[float, int]] = {}

    async def limit(self, volume: str, vfid: VFolderID) -> int:
        key = (volume, str(vfid))
        known = self._known.get(key)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        keep = await self._metadata.get_vfolder_versions(volume, str(vfid))
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[key] = (now + self._ttl, keep)
        return keep

    async def set(self, volume: str, vfid: VFolderID, keep: int) -> None:
        if not 0 <= keep <= MAX_VERSIONS:
            raise InvalidParameter(f"versions must be between 0 and {MAX_VERSIONS}")
        await self._metadata.set_vfolder_versions(volume, str(vfid), keep)
        self._known.pop((volume, str(vfid)), None)

    async def keep(self, volume: str, vfid: VFolderID) -> KeepVersions | None:
        """What a change of a file keeps (None: nothing), in the name of the current caller."""
        limit = await self.limit(volume, vfid)
        if limit <= 0:
            return None
        return KeepVersions(limit, who=caller.current().principal)
