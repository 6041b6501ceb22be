"""The one check in front of every operation on a vfolder, whichever door and service it came
through: the caller's right (``access``), and for a write that the vfolder is not being cloned
or deleted, that the path stays inside it, and that a declared size plainly fits its quota (the
volume's own write path and the shared ledger hold the rest while the bytes stream)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ..core.errors import NotSupported, QuotaExceeded, StorageProxyError
from ..core.paths import RelPath
from ..core.records import Permission
from ..core.types import Capability, VFolderID
from ..volumes.abc import AbstractVolume
from ..volumes.registry import VolumeRegistry
from .access import AccessService, Actor
from .audit import AuditEntry, AuditLog
from .bgtasks import BackgroundTaskService
from .fairness import FairShares


class Gate:
    def __init__(
        self,
        volumes: VolumeRegistry,
        access: AccessService,
        bgtasks: BackgroundTaskService,
        audit: AuditLog | None = None,
        fair: FairShares | None = None,
    ) -> None:
        self._volumes = volumes
        self._fair = fair or FairShares(per_caller=4)
        self._access = access
        self._bgtasks = bgtasks
        self._audit = audit or AuditLog()

    async def enter(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        needed: Permission,
        *,
        relpath: RelPath | None = None,
        nbytes: int | None = None,
        op: str = "access",
    ) -> AbstractVolume:
        """The volume, once the caller may do what it asks; for RW and above the write checks
        too (``relpath``: where it will write; ``nbytes``: how much it declares).  A refusal is
        an audit line (``op``, the refusal's code), whatever the door and the operation."""
        try:
            volume = self._volumes.get(volume_name)
            await self._access.authorize(actor, volume_name, vfid, needed)
            if needed >= Permission.RW:
                await self.writable(volume_name, vfid)
                if relpath is not None:
                    await volume.check_path(vfid, relpath)
                if nbytes:
                    await refuse_oversize(volume, vfid, nbytes)
        except StorageProxyError as e:
            path = None if relpath is None else str(relpath)
            self._audit.record(AuditEntry(op, volume_name, str(vfid), path, nbytes), e.code)
            raise
        return volume

    async def enter_feature(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        needed: Permission,
        feature: tuple[Capability, str],
        *,
        op: str,
        relpath: RelPath | None = None,
    ) -> AbstractVolume:
        """:meth:`enter`, for a feature only some backends have (``feature``: its capability
        and its name): NotSupported, naming the backend, where the volume lacks it."""
        volume = await self.enter(actor, volume_name, vfid, needed, relpath=relpath, op=op)
        capability, name = feature
        if capability not in await volume.get_capabilities():
            raise NotSupported(name, volume.backend_name)
        return volume

    def costly(self, actor: Actor, vfid: VFolderID) -> AbstractAsyncContextManager[None]:
        """Hold one of the caller's few slots for a costly operation (a listing, an archive)."""
        return self._fair.turn(_share_of(actor, vfid))

    async def hold_costly(self, actor: Actor, vfid: VFolderID) -> Callable[[], None]:
        """One of the caller's slots for an operation that outlives the call (a zip stream):
        given back by calling what this returns."""
        return await self._fair.hold(_share_of(actor, vfid))

    async def writable(self, volume_name: str, vfid: VFolderID) -> None:
        """409 while a clone or delete holds the vfolder."""
        await self._bgtasks.ensure_writable(volume_name, str(vfid))


async def refuse_oversize(volume: AbstractVolume, vfid: VFolderID, nbytes: int) -> None:
    """A quick refusal for what plainly cannot fit (the ledger decides the rest)."""
    remaining = await volume.quota_model.headroom(vfid)
    if remaining is not None and nbytes > remaining:
        raise QuotaExceeded(
            f"{nbytes} bytes do not fit the quota of {vfid}: {remaining} bytes left",
            remaining_bytes=remaining,
        )


def _share_of(actor: Actor, vfid: VFolderID) -> str:
    """Whose share a costly operation counts against: a user's (their token, or a link they
    minted), else the caller's on that vfolder (the manager, a manager-minted token)."""
    user = actor.user or actor.on_behalf
    return f"user:{user.sub}" if user is not None else f"{actor.principal}@{vfid}"
