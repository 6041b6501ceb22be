"""RO / RW / RWD: who may do what in a vfolder, decided in one place for every door, and the
ACLs that say so.

A user-kind vfolder's owner has RWD; members of a group-kind vfolder's owning group have RW;
explicit ACL entries (user or group → ro/rw/rwd) add to that, the highest grant wins.  A caller
with no right at all is told the vfolder does not exist (404), so existence is not leaked.
Replacing an ACL is one transaction: a request checked meanwhile sees the old ACL or the new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidParameter, PermissionDenied, VFolderNotFound
from ..core.records import AclEntry, Permission, VFolderRecord
from ..core.types import VFolderID
from ..metadata.store import MetadataStore
from .audit import AuditLog
from .tokens import UserClaims
from .vfolders import VFolderService

GROUP_MEMBER_DEFAULT = Permission.RW


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a service acts for, as the door authenticated it.

    ``manager``: the manager API's shared secret (it decides who may do what; every right).
    ``user``: a user token; every operation is checked against the vfolder's owner and ACL.
    ``grant``: a capability the daemon signed for one operation on one vfolder (a session
    token, a signed URL); it is good for that vfolder and that right only.
    """

    principal: str
    user: UserClaims | None = None
    grant: tuple[str, str, Permission] | None = None  # (volume, vfid, right)
    #: The user who minted the grant (a download link): it holds only while they hold the right.
    on_behalf: UserClaims | None = None

    @classmethod
    def manager(cls) -> Actor:
        return cls("manager")

    @classmethod
    def for_user(cls, claims: UserClaims) -> Actor:
        return cls(f"user:{claims.sub}", user=claims)

    @classmethod
    def for_grant(
        cls,
        what: str,
        volume: str,
        vfid: str,
        right: Permission,
        on_behalf: UserClaims | None = None,
    ) -> Actor:
        return cls(f"token:{what}", grant=(volume, vfid, right), on_behalf=on_behalf)


@dataclass(frozen=True, slots=True)
class AclView:
    owner: str | None
    kind: str
    entries: tuple[AclEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "kind": self.kind,
            "entries": [e.to_json() for e in self.entries],
        }


def parse_principal(principal: str) -> tuple[str, str]:
    """``user:<id>`` or ``group:<id>`` → (type, id)."""
    kind, _, ident = principal.partition(":")
    if kind not in ("user", "group") or not ident:
        raise InvalidParameter(f"a principal is 'user:<id>' or 'group:<id>': {principal!r}")
    return kind, ident


class AccessService:
    def __init__(
        self, metadata: MetadataStore, vfolders: VFolderService, audit: AuditLog | None = None
    ) -> None:
        self._metadata = metadata
        self._vfolders = vfolders
        self._audit = audit or AuditLog()

    # -- the ACL -------------------------------------------------------------------------------
    async def describe(self, volume: str, vfid: VFolderID) -> AclView:
        record = await self._vfolders.registered(volume, vfid)
        entries = await self._metadata.get_acl(volume, str(vfid))
        return AclView(record.owner, record.kind, tuple(entries))

    async def replace(
        self,
        volume: str,
        vfid: VFolderID,
        owner: str | None,
        kind: str,
        entries: Sequence[tuple[str, str]],
    ) -> AclView:
        """Set the owner and kind and replace every entry (``(principal, permission)`` pairs)."""
        await self._vfolders.registered(volume, vfid)
        acl = [AclEntry(*parse_principal(p), Permission.parse(perm)) for p, perm in entries]
        async with self._audit.operation("acl.replace", volume, vfid) as line:
            line.extra.update(owner=owner, kind=kind, entries=[f"{p}={r}" for p, r in entries])
            await self._metadata.replace_acl(volume, str(vfid), owner, kind, acl)
        return await self.describe(volume, vfid)

    async def grant(self, volume: str, vfid: VFolderID, principal: str, permission: str) -> AclView:
        await self._vfolders.registered(volume, vfid)
        entry = AclEntry(*parse_principal(principal), Permission.parse(permission))
        async with self._audit.operation("acl.grant", volume, vfid) as line:
            line.extra.update(grantee=principal, permission=permission)
            await self._metadata.set_acl_entry(volume, str(vfid), entry)
        return await self.describe(volume, vfid)

    async def revoke(self, volume: str, vfid: VFolderID, principal: str) -> AclView:
        await self._vfolders.registered(volume, vfid)
        kind, ident = parse_principal(principal)
        async with self._audit.operation("acl.revoke", volume, vfid) as line:
            line.extra["grantee"] = principal
            if not await self._metadata.remove_acl_entry(volume, str(vfid), kind, ident):
                raise InvalidParameter(f"{principal} has no entry on this vfolder")
        return await self.describe(volume, vfid)

    # -- the check every door makes ----------------------------------------------------------------
    async def authorize(
        self, actor: Actor, volume: str, vfid: VFolderID, needed: Permission
    ) -> None:
        """The one permission check: VFolderNotFound (nothing to see) or PermissionDenied."""
        if actor.user is not None:
            await self.require(actor.user, volume, vfid, needed)
        elif actor.grant is not None:
            g_volume, g_vfid, right = actor.grant
            if (g_volume, g_vfid) != (volume, str(vfid)):
                raise VFolderNotFound(f"no vfolder {vfid} on volume {volume!r}")
            if right < needed:
                raise PermissionDenied(
                    f"this needs {needed.label}; the token grants {right.label}",
                    needed=needed.label,
                    granted=right.label,
                )
            if actor.on_behalf is not None:  # a revoked minter's links die with the right
                await self.require(actor.on_behalf, volume, vfid, needed)
        elif actor.principal != "manager":
            raise PermissionDenied("no right on this vfolder")

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

    async def effective_for(self, actor: Actor, volume: str, vfid: VFolderID) -> Permission:
        """The actor's right on the vfolder (the manager's and a grant's as they are)."""
        if actor.user is not None:
            return await self.effective(actor.user, volume, vfid)
        if actor.grant is not None:
            g_volume, g_vfid, right = actor.grant
            return right if (g_volume, g_vfid) == (volume, str(vfid)) else Permission.NONE
        return Permission.RWD if actor.principal == "manager" else Permission.NONE

    async def visible_to(self, actor: Actor) -> list[tuple[VFolderRecord, Permission]]:
        """The vfolders the actor may see, each with its right (a user's; none for others)."""
        if actor.user is None:
            return []
        return await self.visible_vfolders(actor.user)

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
