"""Versions of files on an s3 volume whose bucket keeps versions (``Enabled`` at start-up).

An overwrite, a move over a file or a delete leaves the object's previous version in the
bucket; the proxy only decides which of them stay.  What it knows beyond S3's listing -- whose
operation replaced a version, why, and the sha256 the proxy recorded for it -- is a small JSON
record per kept version (object metadata cannot change once written):
``<prefix>/<scope-hex>/.sp-versions/<folder hex>/<sha256 of the path>/<version id>.json``,
beside the scope's vfolders where no vfolder path reaches (as the snapshot manifests are).

After every change of a file (``_after_change``) its versions are trimmed: with a limit N the
oldest beyond N are deleted, without one (``versions = 0``) every version the proxy did not keep
on purpose (no record) -- but never a version a snapshot manifest of the vfolder names, nor
anything while a snapshot is being taken (the next change of the file trims it).  Noncurrent
delete markers go too.  Listing, reading, restoring and deleting look the version up in the
file's own listing, so an id of another file or vfolder, or the current version, is not found.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storage_proxy.core.errors import (
    InvalidParameter,
    NotSupported,
    SnapshotNotFound,
    VersionInSnapshot,
    VersionNotFound,
)
from storage_proxy.core.files import KeepVersions, LocalFile, ReadOptions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.snapshots import FileVersion, check_version_id
from storage_proxy.core.types import Capability, DirEntryType, FileMeta, QuotaScopeID, VFolderID
from storage_proxy.volumes.versionstore import VERSIONS_DIR, file_key

from .client import modified, translate
from .data import read_object
from .snapshots import S3Snapshots

Listed = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prior:
    """The version a change is about to replace, and the sha256 the proxy recorded for it."""

    version: str
    sha256: str | None = None


def _live(v: Listed) -> bool:
    return not v.get("DeleteMarker") and not v.get("IsLatest")


class S3Versions(S3Snapshots):
    """The file-version part of :class:`~.volume.S3Volume` (see the module docstring)."""

    if TYPE_CHECKING:  # provided by S3Volume and the data part

        def vfolder_prefix(self, vfid: VFolderID) -> str: ...
        def scope_marker(self, qsid: QuotaScopeID) -> str: ...
        async def get_file_meta(self, vfid: VFolderID, relpath: RelPath) -> FileMeta: ...

    async def get_capabilities(self) -> frozenset[Capability]:
        caps = await super().get_capabilities()
        return caps | {Capability.FILE_VERSIONS} if self.versioned else caps

    def versions_prefix(self, vfid: VFolderID) -> str:
        return self.key(vfid.quota_scope_id.pathname, VERSIONS_DIR, vfid.folder_id.hex) + "/"

    def _records_prefix(self, vfid: VFolderID, rel: RelPath) -> str:
        return f"{self.versions_prefix(vfid)}{file_key(rel)}/"

    def _versions_supported(self) -> None:
        if not self.versioned:
            raise NotSupported("file versions", self.backend_name)

    async def _key_versions(self, key: str) -> list[Listed]:
        """The key's versions and delete markers (versions newest first, as S3 lists them)."""
        return [v for v in await self.conn.versions(key) if v["Key"] == key]

    async def _records(self, vfid: VFolderID, rel: RelPath) -> dict[str, list[Listed]]:
        """The file's version records by version id (each with every version of its key)."""
        prefix = self._records_prefix(vfid, rel)
        found: dict[str, list[Listed]] = {}
        for v in await self.conn.versions(prefix):
            name = v["Key"][len(prefix) :]
            if name.endswith(".json") and "/" not in name:
                found.setdefault(name[: -len(".json")], []).append(v)
        return found

    async def _stored_bytes(self, prefix: str) -> int:
        """Every version below ``prefix``: kept versions count against the scope's quota."""
        return sum(v.get("Size", 0) for v in await self.conn.versions(prefix) if _stored(v))

    # -- the hooks of the changing paths ---------------------------------------------------------
    async def _prior_of(self, vfid: VFolderID, rel: RelPath, version: str, etag: str) -> Prior:
        record = await self.deps.books.get_file_meta(self.name, str(vfid), str(rel))
        fresh = record is not None and record.get("etag") == etag
        return Prior(version, record.get("sha256") if record and fresh else None)

    async def _before_change(self, vfid: VFolderID, rel: RelPath) -> Prior | None:
        """What a change of the file will replace (nothing to track without versioning)."""
        if not self.versioned or not rel.parts:
            return None
        head = await self.conn.head(self.file_key(vfid, rel))
        if head is None or not head.get("VersionId"):
            return None
        return await self._prior_of(vfid, rel, str(head["VersionId"]), str(head.get("ETag", "")))

    async def _after_change(
        self,
        vfid: VFolderID,
        rel: RelPath,
        prior: Prior | None,
        keep: KeepVersions | None,
        reason: str,
    ) -> None:
        """The replaced version kept (with its record) or dropped, and the file's versions
        trimmed to the limit."""
        if not self.versioned or prior is None:
            return
        limit = keep.limit if keep is not None else 0
        if limit > 0:
            record = {
                "path": str(rel),
                "who": keep.who if keep is not None else None,
                "reason": reason,
                "sha256": prior.sha256,
                "kept": time.time(),
            }
            key = f"{self._records_prefix(vfid, rel)}{prior.version}.json"
            with translate(rel):
                await self.conn.c.put_object(
                    Bucket=self.conn.bucket, Key=key, Body=json.dumps(record).encode()
                )
        await self._trim(vfid, rel, limit)

    async def _trim(self, vfid: VFolderID, rel: RelPath, limit: int) -> None:
        key = self.file_key(vfid, rel)
        listed = await self._key_versions(key)
        kept = [v for v in listed if _live(v)]
        markers = [v for v in listed if v.get("DeleteMarker") and not v.get("IsLatest")]
        records = await self._records(vfid, rel)
        doomed = kept[limit:] if limit > 0 else [v for v in kept if v["VersionId"] not in records]
        if doomed:
            spared = await self._protected(vfid)
            doomed = (
                [] if spared is None else [v for v in doomed if (key, v["VersionId"]) not in spared]
            )
        present = {v["VersionId"] for v in listed if not v.get("DeleteMarker")}
        gone = {v["VersionId"] for v in doomed} | (set(records) - present)
        dropped = [r for vid in gone for r in records.get(vid, [])]
        await self.conn.delete_versions(doomed + markers + dropped)

    async def _protected(self, vfid: VFolderID) -> set[tuple[str, str]] | None:
        """The versions the vfolder's snapshots name; None while a snapshot is being taken (it
        may name any version that was current when it listed them).  Looked at in this order:
        a snapshot that finished unseen published its manifest before it stopped taking."""
        if await self.snapshot_pending(vfid):
            return None
        spared: set[tuple[str, str]] = set()
        for snap in await self.list_snapshots(vfid):
            try:
                manifest = await self._manifest(vfid, snap.id)
            except SnapshotNotFound:
                continue  # deleted meanwhile
            spared.update((s.key, s.version) for s in manifest.files.values() if s.version)
        return spared

    async def _delete_tree(self, vfid: VFolderID, rel: RelPath, keep: KeepVersions | None) -> None:
        """Delete a directory's keys; on a versioned bucket each file's version is then kept or
        dropped as a delete of the file keeps it."""
        prefix = self.file_key(vfid, rel) + "/"
        if not self.versioned:
            await self.conn.delete_prefix(prefix)
            return
        base = self.vfolder_prefix(vfid)
        current = [
            v
            for v in await self.conn.versions(prefix)
            if v.get("IsLatest") and not v.get("DeleteMarker") and not v["Key"].endswith("/")
        ]
        priors = []
        for v in current:
            path = RelPath.parse(v["Key"][len(base) :])
            priors.append((path, await self._prior_of(vfid, path, v["VersionId"], v["ETag"])))
        await self.conn.delete_prefix(prefix)
        for path, prior in priors:
            await self._after_change(vfid, path, prior, keep, "delete")

    async def _moved_away(self, vfid: VFolderID, keys: list[str]) -> None:
        """Files moved elsewhere live on there: what they left behind is not kept here."""
        if not self.versioned:
            return
        base = self.vfolder_prefix(vfid)
        for key in keys:
            if not key.endswith("/"):
                await self._trim(vfid, RelPath.parse(key[len(base) :]), 0)

    async def drop_versions(self, vfid: VFolderID) -> None:
        """Every kept version of the vfolder's files and their records (it is being deleted:
        its current files are in the trash, its snapshots gone)."""
        if self.versioned:
            for prefix in (self.versions_prefix(vfid), self.vfolder_prefix(vfid)):
                await self.conn.delete_versions(await self.conn.versions(prefix))

    # -- the interface ---------------------------------------------------------------------------
    async def _kept(self, vfid: VFolderID, rel: RelPath) -> list[FileVersion]:
        await self._require_vfolder(vfid)
        if not rel.parts:
            return []
        listed = [v for v in await self._key_versions(self.file_key(vfid, rel)) if _live(v)]
        records = await self._records(vfid, rel)
        infos = await asyncio.gather(
            *(self._version_record(records.get(v["VersionId"])) for v in listed)
        )
        return [_version(v, info) for v, info in zip(listed, infos, strict=True)]

    async def _version_record(self, entries: list[Listed] | None) -> dict[str, Any]:
        current = [e for e in entries or [] if e.get("IsLatest") and not e.get("DeleteMarker")]
        if not current:
            return {}
        with translate("a version record"):
            r = await self.conn.c.get_object(Bucket=self.conn.bucket, Key=current[0]["Key"])
            async with r["Body"] as body:
                raw = await body.read()
        try:
            record = json.loads(raw)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    async def _find(self, vfid: VFolderID, rel: RelPath, version_id: str) -> FileVersion:
        self._versions_supported()
        try:
            vid = check_version_id(version_id)
        except InvalidParameter:
            raise VersionNotFound(f"{rel} has no version {version_id!r}") from None
        for version in await self._kept(vfid, rel):
            if version.id == vid:
                return version
        raise VersionNotFound(f"{rel} has no version {vid!r}")

    async def list_versions(self, vfid: VFolderID, relpath: RelPath) -> list[FileVersion]:
        if not self.versioned:
            return await super().list_versions(vfid, relpath)
        return await self._kept(vfid, relpath)

    async def open_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, *, read_up_to: int = 0
    ) -> tuple[FileVersion, LocalFile | None]:
        return await self._find(vfid, relpath, version_id), None

    async def read_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, options: ReadOptions
    ) -> AsyncIterator[bytes]:
        version = await self._find(vfid, relpath, version_id)
        if options.length == 0 or version.size == 0:
            return
        key = self.file_key(vfid, relpath)
        async for chunk in read_object(self.conn, key, version.id, options, relpath):
            yield chunk

    async def restore_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, keep: KeepVersions
    ) -> FileMeta:
        version = await self._find(vfid, relpath, version_id)
        source = (self.file_key(vfid, relpath), version.id)
        await self._copy_object(vfid, relpath, source, version.size, version.sha256, keep)
        return await self.get_file_meta(vfid, relpath)

    async def _copy_object(
        self,
        vfid: VFolderID,
        dest: RelPath,
        source: tuple[str, str | None],
        size: int,
        sha256: str | None,
        keep: KeepVersions | None,
    ) -> None:
        """An object (one version of it) copied server-side over ``dest``, the current one
        replaced as any change of the file replaces it; the sha256 recorded where known."""
        target = self.file_key(vfid, dest)
        if await self._writable_target(vfid, dest, True) is DirEntryType.FILE:
            prior = await self._before_change(vfid, dest)
        else:
            prior = None
        async with self.quota_model.reservation(vfid) as res:
            await res.reserve(size)
            await self.conn.copy(source[0], target, size, source[1])
            res.used = size
        books, folder = self.deps.books, str(vfid)
        head = await self.conn.head(target) if sha256 else None
        if head is not None:
            record: dict[str, Any] = {"etag": head.get("ETag"), "sha256": sha256}
            record.update(md5=None, content_type=None, tags={})
            await books.put_file_meta(self.name, folder, str(dest), record)
        else:
            await books.delete_file_meta(self.name, folder, str(dest))
        await self._after_change(vfid, dest, prior, keep, "restore")
        self._changed(vfid)

    async def delete_version(self, vfid: VFolderID, relpath: RelPath, version_id: str) -> None:
        version = await self._find(vfid, relpath, version_id)
        key = self.file_key(vfid, relpath)
        spared = await self._protected(vfid)
        if spared is None or (key, version.id) in spared:
            why = "is being taken" if spared is None else "holds it"
            raise VersionInSnapshot(f"a snapshot of the vfolder {why}: {relpath} {version.id}")
        records = await self._records(vfid, relpath)
        await self.conn.delete_versions(
            [{"Key": key, "VersionId": version.id}, *records.get(version.id, [])]
        )
        self._changed(vfid)


def _stored(v: Listed) -> bool:
    return not v.get("DeleteMarker")


def _version(v: Listed, record: dict[str, Any]) -> FileVersion:
    when = modified(v)
    kept = record.get("kept")
    return FileVersion(
        id=str(v["VersionId"]),
        size=int(v.get("Size", 0)),
        modified=when,
        kept=datetime.fromtimestamp(float(kept), UTC) if isinstance(kept, int | float) else when,
        sha256=record.get("sha256") if isinstance(record.get("sha256"), str) else None,
        who=record.get("who") if isinstance(record.get("who"), str) else None,
        reason=str(record.get("reason") or "overwrite"),
    )
