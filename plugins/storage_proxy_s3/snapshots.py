"""Snapshots of s3 vfolders: manifests (:mod:`.manifest`) under a hidden prefix of the scope.

``<prefix>/<scope-hex>/.sp-snapshots/<folder hex>/<id>.json`` is the manifest and
``.../<id>/<path>`` the snapshot's copies, if any: beside the vfolders of the scope, where no
vfolder path reaches (a vfolder's keys all begin with its own prefix, and paths have no ``..``).

- A bucket with versioning on: the manifest names each file's current version (one listing of
  the versions, no data copied); reading and restoring fetch those versions.  Noncurrent
  versions are not in any listing, so the snapshot is not counted in the scope's usage.  A
  lifecycle rule that expires noncurrent versions expires the files of old snapshots with them.
- Without versioning: each file is copied server-side (CopyObject) under the snapshot's
  prefix, inside the scope, so the copies count against its quota (``snapshot-quota``).

A file being written while the snapshot is taken is in it as one whole version (an S3 PUT is
atomic; a copy copies one version), old or new.  The manifest is written last with
``If-None-Match: *``, so of two takers of one id only one succeeds; deleting a snapshot deletes
its manifest first (out of sight at once), then its copies.  Restoring goes through the
manifest's tree and the volume's own writes (quota reservations, checksums).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from storage_proxy.core.errors import (
    FileNotFound,
    QuotaExceeded,
    SnapshotExists,
    SnapshotNotFound,
)
from storage_proxy.core.files import KeepVersions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.snapshots import (
    Progress,
    RestoreOptions,
    RestoreReport,
    SnapshotInfo,
    check_snapshot_id,
)
from storage_proxy.core.types import Capability, DirEntryType, VFolderID
from storage_proxy.volumes.abc import AbstractVolume
from storage_proxy.volumes.quota import ProxyQuotaModel
from storage_proxy.volumes.snapshots import SnapshotTree, by_write, restore_by_copy

from .client import S3Connection, error_code, modified, translate
from .manifest import COPIES, VERSIONS, Manifest, ManifestTree, Stored
from .window import for_each

SNAPSHOTS = ".sp-snapshots"
#: Below a vfolder's snapshots: a marker per snapshot being taken (versioned buckets); one
#: older than this is left by a daemon that stopped meanwhile and is not heeded.
TAKING, TAKING_STALE = ".taking", 600.0
_COPY_CONCURRENCY = 16


class S3Snapshots(AbstractVolume):
    """The snapshot part of :class:`~.volume.S3Volume` (see the module docstring)."""

    conn: S3Connection
    quota_model: ProxyQuotaModel
    #: The bucket keeps versions (set at start-up): snapshots are manifests of versions.
    versioned: bool = False

    # provided by S3Volume
    def key(self, *parts: str) -> str:
        raise NotImplementedError

    def file_key(self, vfid: VFolderID, rel: RelPath) -> str:
        raise NotImplementedError

    if TYPE_CHECKING:  # the data part's (a stub here would shadow it: this class comes first)

        async def _writable_target(
            self, vfid: VFolderID, relpath: RelPath, overwrite: bool
        ) -> DirEntryType | None: ...

        async def _copy_object(
            self,
            vfid: VFolderID,
            dest: RelPath,
            source: tuple[str, str | None],
            size: int,
            sha256: str | None,
            keep: KeepVersions | None,
        ) -> None: ...

    async def _require_vfolder(self, vfid: VFolderID) -> str:
        raise NotImplementedError

    def _changed(self, vfid: VFolderID) -> None:
        raise NotImplementedError

    async def get_capabilities(self) -> frozenset[Capability]:
        """Copies count against the scope's quota; versions are not listed, so not counted."""
        caps = await super().get_capabilities()
        return caps - {Capability.SNAPSHOT_QUOTA} if self.versioned else caps

    def snapshots_prefix(self, vfid: VFolderID) -> str:
        return self.key(vfid.quota_scope_id.pathname, SNAPSHOTS, vfid.folder_id.hex) + "/"

    def _manifest_key(self, vfid: VFolderID, snapshot_id: str) -> str:
        return f"{self.snapshots_prefix(vfid)}{check_snapshot_id(snapshot_id)}.json"

    async def _manifest(self, vfid: VFolderID, snapshot_id: str) -> Manifest:
        await self._require_vfolder(vfid)
        key = self._manifest_key(vfid, snapshot_id)
        try:
            with translate(key):
                r = await self.conn.c.get_object(Bucket=self.conn.bucket, Key=key)
                async with r["Body"] as body:
                    raw = await body.read()
        except FileNotFound:
            raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}") from None
        return Manifest.from_bytes(raw)

    # -- taking ----------------------------------------------------------------------------------
    async def create_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        key = self._manifest_key(vfid, snapshot_id)
        prefix = await self._require_vfolder(vfid)
        if await self.conn.head(key) is not None:
            raise SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}")
        token = secrets.token_hex(8)
        mode = VERSIONS if self.versioned else COPIES
        manifest = Manifest(time.time(), mode, token)
        copies = f"{self.snapshots_prefix(vfid)}{snapshot_id}/"
        try:
            async with self._taking(vfid, token):
                if self.versioned:
                    await self._list_versions(prefix, manifest)
                else:
                    await self._copy_files(vfid, prefix, copies, manifest, progress)
                await self._publish(key, manifest, vfid, snapshot_id)
        except BaseException:
            if not self.versioned:  # the copies of this attempt (another taker's use a token)
                await self.conn.delete_prefix(f"{copies}{token}/")
            raise
        finally:
            self.quota_model.invalidate(vfid)
        return SnapshotInfo(
            snapshot_id, datetime.fromtimestamp(manifest.created, UTC), manifest.size
        )

    @contextlib.asynccontextmanager
    async def _taking(self, vfid: VFolderID, token: str) -> AsyncIterator[None]:
        """On a versioned bucket, a marker while the snapshot is taken: file versions are not
        trimmed meanwhile (the manifest may name any version current when it listed them)."""
        if not self.versioned:
            yield
            return
        key = f"{self.snapshots_prefix(vfid)}{TAKING}/{token}"
        with translate(key):
            r = await self.conn.c.put_object(Bucket=self.conn.bucket, Key=key)
        try:
            yield
        finally:
            mine = [{"Key": key, "VersionId": r["VersionId"]}] if r.get("VersionId") else []
            await asyncio.shield(self.conn.delete_versions(mine))

    async def snapshot_pending(self, vfid: VFolderID) -> bool:
        """A snapshot of the vfolder is being taken (a marker younger than ``TAKING_STALE``)."""
        if not self.versioned:
            return False
        async for item in self.conn.iter_keys(f"{self.snapshots_prefix(vfid)}{TAKING}/"):
            if time.time() - modified(item).timestamp() < TAKING_STALE:
                return True
        return False

    async def _list_versions(self, prefix: str, manifest: Manifest) -> None:
        """Every current version below the vfolder (a key whose newest is a delete marker has
        none: it is deleted)."""
        for v in await self.conn.versions(prefix):
            rel = v["Key"][len(prefix) :]
            if v.get("DeleteMarker") or not v.get("IsLatest") or not rel:
                continue
            if rel.endswith("/"):
                manifest.dirs.add(rel.rstrip("/"))
                continue
            when = modified(v).timestamp()
            manifest.files[rel] = Stored(v["Size"], when, v["Key"], v["VersionId"])

    async def _copy_files(
        self,
        vfid: VFolderID,
        prefix: str,
        copies: str,
        manifest: Manifest,
        progress: Progress | None,
    ) -> None:
        items = [i async for i in self.conn.iter_keys(prefix) if i["Key"] != prefix]
        total = sum(i["Size"] for i in items if not i["Key"].endswith("/"))
        remaining = await self.quota_model.remaining_bytes(vfid.quota_scope_id)
        if remaining is not None and total > remaining:
            raise QuotaExceeded(
                f"a snapshot of {vfid} needs {total} bytes of its quota scope; "
                f"{remaining} are left",
                remaining_bytes=remaining,
            )
        if progress is not None:
            progress.total = total
        base = f"{copies}{manifest.token}/"

        async def copy(item: Mapping[str, Any]) -> None:
            rel = item["Key"][len(prefix) :]
            if rel.endswith("/"):
                manifest.dirs.add(rel.rstrip("/"))
                return
            try:
                etag = await self.conn.copy(item["Key"], base + rel, item["Size"])
            except FileNotFound:
                return  # deleted since the listing: not in the snapshot
            size = item["Size"]
            listed = str(item.get("ETag", "")).strip('"')
            if etag is None or etag.strip('"') != listed:  # replaced since the listing
                head = await self.conn.head(base + rel)  # what was copied: one whole version
                size = int(head["ContentLength"]) if head else size
            manifest.files[rel] = Stored(size, modified(item).timestamp(), base + rel)
            if progress is not None:
                progress.add(size)

        await for_each(items, copy, _COPY_CONCURRENCY)

    async def _publish(
        self, key: str, manifest: Manifest, vfid: VFolderID, snapshot_id: str
    ) -> None:
        """The manifest, if no other taker wrote one: ``If-None-Match`` where the bucket keeps
        no versions; on a versioned bucket (where RGW lets every PUT through) the oldest
        version of the manifest wins and a later one is deleted again."""
        taken = SnapshotExists(f"vfolder {vfid} has a snapshot {snapshot_id!r}")
        try:
            r = await self.conn.c.put_object(
                Bucket=self.conn.bucket,
                Key=key,
                Body=manifest.to_bytes(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as e:
            if error_code(e)[1] in (409, 412):
                raise taken from None
            with translate(key):
                raise
        except Exception:
            with translate(key):
                raise
        mine = r.get("VersionId")
        if self.versioned and mine:
            kept = [v for v in await self._manifest_versions(key) if not v.get("DeleteMarker")]
            if kept and kept[-1]["VersionId"] != mine:
                await self.conn.delete_versions([{"Key": key, "VersionId": mine}])
                raise taken

    async def _manifest_versions(self, key: str) -> list[dict[str, Any]]:
        return [v for v in await self.conn.versions(key) if v["Key"] == key]

    # -- listing, reading, deleting --------------------------------------------------------------
    async def list_snapshots(self, vfid: VFolderID) -> list[SnapshotInfo]:
        await self._require_vfolder(vfid)
        prefix = self.snapshots_prefix(vfid)
        found = []
        async for item in self.conn.iter_keys(prefix, delimiter="/"):
            name = item.get("Key", "")[len(prefix) :]
            if name.endswith(".json"):
                found.append(SnapshotInfo(name[: -len(".json")], modified(item)))
        return sorted(found, key=lambda s: (s.created, s.id))

    async def snapshot_tree(self, vfid: VFolderID, snapshot_id: str) -> SnapshotTree:
        return ManifestTree(self.conn, await self._manifest(vfid, snapshot_id))

    async def restore_snapshot(
        self,
        vfid: VFolderID,
        snapshot_id: str,
        options: RestoreOptions,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """The manifest's files copied back server-side (versions or copies), no byte through
        the proxy; in place, what a file replaces is kept as any change keeps it (``versions``)."""
        written = by_write(self, vfid)

        async def put(tree: SnapshotTree, rel: RelPath, dest: RelPath, o: RestoreOptions) -> int:
            if not isinstance(tree, ManifestTree):
                return await written(tree, rel, dest, o)
            stored = tree.manifest.files[str(rel)]
            source = (stored.key, stored.version)
            await self._copy_object(vfid, dest, source, stored.size, None, o.keep)
            return stored.size

        return await restore_by_copy(self, vfid, snapshot_id, options, progress, put=put)

    async def delete_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> None:
        key = self._manifest_key(vfid, snapshot_id)
        await self._require_vfolder(vfid)
        if await self.conn.head(key) is None:
            raise SnapshotNotFound(f"vfolder {vfid} has no snapshot {snapshot_id!r}")
        if self.versioned:  # every version of the manifest: an id taken again starts afresh
            await self.conn.delete_versions(await self._manifest_versions(key))
        else:
            await self.conn.delete_keys([key])  # out of sight first
            await self.conn.delete_prefix(f"{self.snapshots_prefix(vfid)}{snapshot_id}/")
        self._changed(vfid)

    async def drop_snapshots(self, vfid: VFolderID) -> None:
        """Every snapshot of the vfolder, manifests first (it is being deleted)."""
        prefix = self.snapshots_prefix(vfid)
        if self.versioned:
            await self.conn.delete_versions(await self.conn.versions(prefix))
            return
        manifests = [
            i["Key"] async for i in self.conn.iter_keys(prefix, delimiter="/") if "Key" in i
        ]
        await self.conn.delete_keys(manifests)
        await self.conn.delete_prefix(prefix)
