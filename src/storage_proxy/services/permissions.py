"""RO / RW / RWD: who may do what in a vfolder, decided in one place for every API.

A user-kind vfolder's owner has RWD; members of a group-kind vfolder's owning group have RW;
explicit ACL entries (user or group → ro/rw/rwd) add to that, the highest grant wins.  A caller
with no right at all is told the vfolder does not exist (404), so existence is not leaked.
"""

from __future__ import annotations

from ..core.errors import PermissionDenied, VFolderNotFound
from ..core.records import Permission, VFolderRecord
from ..core.types import VFolderID
from ..metadata.store import MetadataStore
from .tokens import UserClaims

GROUP_MEMBER_DEFAULT = Permission.RW


class PermissionService:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def effective(self, user: UserClaims, volume: str, vfid: VFolderID) -> Permission:
        record = await self._metadata.get_vfolder(volume, str(vfid))
        if record is None:
            return Permission.NONE
        grant = _ownership_grant(user, record)
        for entry in await self._metadata.get_acl(volume, str(vfid)):
            applies = (entry.principal_type == "user" and entry.principal == user.sub) or (
                entry.principal_type == "group" and entry.principal in user.groups
            )
            if applies and entry.permission > grant:
                grant = entry.permission
        return grant

    async def require(
        self, user: UserClaims, volume: str, vfid: VFolderID, needed: Permission
    ) -> Permission:
        grant = await self.effective(user, volume, vfid)
        if grant is Permission.NONE:
            raise VFolderNotFound(f"no vfolder {vfid} on volume {volume!r}")
        if grant < needed:
            raise PermissionDenied(
                f"this needs {needed.label} on the vfolder; you have {grant.label}",
                needed=needed.label,
                granted=grant.label,
            )
        return grant

    async def visible_vfolders(self, user: UserClaims) -> list[tuple[VFolderRecord, Permission]]:
        result: list[tuple[VFolderRecord, Permission]] = []
        for record in await self._metadata.list_vfolders():
            grant = await self.effective(user, record.volume, VFolderID.parse(record.vfid))
            if grant is not Permission.NONE:
                result.append((record, grant))
        return result


def _ownership_grant(user: UserClaims, record: VFolderRecord) -> Permission:
    if record.owner is None:
        return Permission.NONE
    if record.kind == "user" and record.owner == user.sub:
        return Permission.RWD
    if record.kind == "group" and record.owner in user.groups:
        return GROUP_MEMBER_DEFAULT
    return Permission.NONE
