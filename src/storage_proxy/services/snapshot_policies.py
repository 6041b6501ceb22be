"""Snapshot policies of vfolders and quota scopes, for every door: the rules once.

A vfolder's own policy wins over its quota scope's.  Reading a vfolder's needs RO on it,
setting or clearing it RW (through the :class:`Gate`, on a volume that takes snapshots); a
quota scope's is the manager's alone (the file API knows no scopes).  Each change is an audit
line (``snapshot-policy.set``, ``snapshot-policy.clear``; a scope's carries its qsid as the
vfid).  The policies are run by the ``snapshot-policies`` job (:mod:`.jobs.snapshots`);
clearing a policy leaves the snapshots it took in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import NotSupported, PermissionDenied
from ..core.records import Permission
from ..core.snapshot_policy import SnapshotPolicy
from ..core.types import Capability, QuotaScopeID, VFolderID
from ..metadata.store import MetadataStore
from ..volumes.abc import AbstractVolume
from ..volumes.registry import VolumeRegistry
from .access import Actor
from .audit import AuditLog
from .gate import Gate


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A vfolder's or a quota scope's own policy, and for a vfolder its scope's."""

    own: SnapshotPolicy | None
    scope: SnapshotPolicy | None = None
    of_scope: bool = False  # the view of a quota scope (it inherits nothing)

    @property
    def effective(self) -> SnapshotPolicy | None:
        return self.own or self.scope

    def to_json(self) -> dict[str, Any]:
        effective = self.effective
        source = None
        if self.own is not None:
            source = "quota-scope" if self.of_scope else "vfolder"
        elif self.scope is not None:
            source = "quota-scope"
        return {
            "policy": None if self.own is None else self.own.to_json(),
            "scope_policy": None if self.scope is None else self.scope.to_json(),
            "effective": None if effective is None else effective.to_json(),
            "source": source,
        }


def effective_policy(policies: dict[str, SnapshotPolicy], vfid: VFolderID) -> SnapshotPolicy | None:
    """Of a volume's policies (target → policy), the one that applies to ``vfid``."""
    return policies.get(str(vfid)) or policies.get(str(vfid.quota_scope_id))


class SnapshotPolicyService:
    def __init__(
        self, gate: Gate, volumes: VolumeRegistry, metadata: MetadataStore, audit: AuditLog
    ) -> None:
        self._gate = gate
        self._volumes = volumes
        self._metadata = metadata
        self._audit = audit

    async def get(
        self, actor: Actor, volume_name: str, target: VFolderID | QuotaScopeID
    ) -> PolicyView:
        """A vfolder's (RO) or a quota scope's (the manager's) policies."""
        if isinstance(target, QuotaScopeID):
            await self._scope_volume(actor, volume_name)
            policies = await self._metadata.get_snapshot_policies(volume_name)
            return PolicyView(policies.get(str(target)), of_scope=True)
        await self._gate.enter(actor, volume_name, target, Permission.RO, op="snapshot-policy.get")
        policies = await self._metadata.get_snapshot_policies(volume_name)
        return PolicyView(policies.get(str(target)), policies.get(str(target.quota_scope_id)))

    async def set(
        self,
        actor: Actor,
        volume_name: str,
        target: VFolderID | QuotaScopeID,
        policy: SnapshotPolicy | None,
    ) -> None:
        """Set (or, with None, clear) a vfolder's (RW) or a quota scope's own policy."""
        op = "snapshot-policy.set" if policy is not None else "snapshot-policy.clear"
        if isinstance(target, QuotaScopeID):
            volume = await self._scope_volume(actor, volume_name)
            if policy is not None and Capability.SNAPSHOT not in await volume.get_capabilities():
                raise NotSupported("snapshots", volume.backend_name)
        elif policy is None:
            await self._gate.enter(actor, volume_name, target, Permission.RW, op=op)
        else:
            feature = (Capability.SNAPSHOT, "snapshots")
            await self._gate.enter_feature(
                actor, volume_name, target, Permission.RW, feature, op=op
            )
        await self._change(op, volume_name, str(target), policy)

    async def _scope_volume(self, actor: Actor, volume_name: str) -> AbstractVolume:
        """A quota scope's policy is the manager's to read and set (users know no scopes)."""
        if actor.principal != "manager":
            raise PermissionDenied("a quota scope's snapshot policy is the manager's")
        return self._volumes.get(volume_name)

    async def _change(
        self, op: str, volume_name: str, target: str, policy: SnapshotPolicy | None
    ) -> None:
        async with self._audit.operation(op, volume_name, target) as line:
            if policy is not None:
                line.extra["policy"] = policy.to_json()
            await self._metadata.set_snapshot_policy(volume_name, target, policy)


__all__ = ["PolicyView", "SnapshotPolicyService", "effective_policy"]
