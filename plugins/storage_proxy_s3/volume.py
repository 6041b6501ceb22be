"""S3Volume: one bucket (plus an optional key prefix) as a volume.

Vfolders are key prefixes in the Backend.AI layout (``<prefix>/<scope-hex>/<h0:2>/<h2:4>/<h4:>/``)
with a zero-byte marker key ending in ``/`` for each quota scope, vfolder and explicit directory;
directories are otherwise implied by the keys below them (listing with ``Delimiter='/'``).
Quotas are the proxy's (S3 has none): :class:`ProxyQuotaModel` over prefix listings.
Snapshots are manifests of object versions or of server-side copies (:mod:`.snapshots`); on a
bucket with versioning the objects' old versions are the files' versions (:mod:`.versions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from storage_proxy.core.errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    QuotaScopeExists,
    QuotaScopeNotFound,
    VFolderExists,
    VFolderNotFound,
)
from storage_proxy.core.files import KeepVersions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import (
    Capability,
    DirEntry,
    DirEntryType,
    FSUsage,
    QuotaScopeID,
    VFolderID,
    VFolderUsage,
)
from storage_proxy.volumes.abc import (
    DEFAULT_VFOLDER_MODE,
    SCANDIR_DEFAULT,
)
from storage_proxy.volumes.quota import Bucket, ProxyQuotaModel, QuotaStorage
from storage_proxy.volumes.staging import LocalStaging

from .checksums import endpoint_verifies_sha256
from .client import OPTIONS, S3Connection, check_options, translate
from .early import EarlyParts
from .entries import dir_entry, file_entry
from .presign import PresignMixin
from .staging import StagingMixin
from .upkeep import S3Upkeep
from .versions import S3Versions
from .window import for_each

log = logging.getLogger(__name__)

_COPY_CONCURRENCY = 16
_NO_CAPACITY = 1 << 60  # S3 has no capacity; report 1 EiB


class S3Volume(S3Versions, S3Upkeep, PresignMixin, StagingMixin):
    backend_name = "s3"
    capabilities = frozenset(
        {
            Capability.VFOLDER,
            Capability.QUOTA,
            Capability.PRESIGN,
            Capability.SNAPSHOT,  # manifests of versions, or of server-side copies
            Capability.SNAPSHOT_QUOTA,  # the copies (dropped on a versioned bucket)
        }
    )
    options_schema = OPTIONS

    quota_model: ProxyQuotaModel
    options: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = check_options(self.options)
        self.conn = S3Connection(self.options)
        self.root: str = self.options["prefix"]
        self.part_size: int = self.options["part-size"]
        self.staging = LocalStaging(
            Path(self.options["staging-dir"] or self.mount_path / ".uploads")
        )
        self.early = EarlyParts(
            self.conn,
            self.staging,
            self.part_size,
            self.options["upload-concurrency"],
            self._upload_target,
        )
        self._ttl: float = self.options["quota-usage-ttl"]
        self._usage: dict[VFolderID, tuple[float, VFolderUsage]] = {}
        storage = QuotaStorage(self._scope_exists, self._create_scope, self._bucket_used)
        self.quota_model = ProxyQuotaModel.with_storage(
            self.name, storage, self.deps.books, usage_ttl=self._ttl
        )

    async def init(self) -> None:
        await self.conn.open()
        try:
            await self.conn.ensure_bucket(self.options["create-bucket"])
            self.versioned = await self.conn.versioning_enabled()
            await asyncio.to_thread(self.staging.directory.mkdir, parents=True, exist_ok=True)
            setting = self.options["checksum-sha256"]
            if setting == "auto":
                self.conn.sha256 = await endpoint_verifies_sha256(self.conn, self.root)
            else:
                self.conn.sha256 = bool(setting)
            log.info(
                "volume %s: x-amz-checksum-sha256 %s",
                self.name,
                "sent with every PUT and part" if self.conn.sha256 else "not sent (not verified)",
            )
        except BaseException:
            await self.conn.close()
            raise

    async def shutdown(self) -> None:
        await self.early.close()
        await self.conn.close()

    # -- layout ------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.root, *parts) if p)

    def scope_marker(self, qsid: QuotaScopeID) -> str:
        return self.key(qsid.pathname) + "/"

    def vfolder_prefix(self, vfid: VFolderID) -> str:
        return self.key(*vfid.relative_parts) + "/"

    def file_key(self, vfid: VFolderID, rel: RelPath) -> str:
        return self.vfolder_prefix(vfid) + "/".join(rel.parts)

    async def _require_vfolder(self, vfid: VFolderID) -> str:
        prefix = self.vfolder_prefix(vfid)
        if await self.conn.head(prefix) is None:
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")
        return prefix

    # -- quota storage -----------------------------------------------------------------------
    async def _scope_exists(self, qsid: QuotaScopeID) -> bool:
        return await self.conn.head(self.scope_marker(qsid)) is not None

    async def _create_scope(self, qsid: QuotaScopeID) -> None:
        if await self._scope_exists(qsid):
            raise QuotaScopeExists(f"quota scope {qsid} already exists")
        with translate(qsid):
            await self.conn.c.put_object(Bucket=self.conn.bucket, Key=self.scope_marker(qsid))

    async def _bucket_used(self, bucket: Bucket) -> int:
        if isinstance(bucket, QuotaScopeID):
            if self.versioned:  # kept versions count against the scope's quota
                return await self._stored_bytes(self.scope_marker(bucket))
            return (await self._list_usage(self.scope_marker(bucket))).used_bytes
        return (await self._list_usage(self.vfolder_prefix(bucket))).used_bytes

    async def _list_usage(self, prefix: str) -> VFolderUsage:
        count = size = 0
        async for item in self.conn.iter_keys(prefix):
            if not item["Key"].endswith("/"):
                count += 1
                size += item["Size"]
        return VFolderUsage(count, size)

    def _changed(self, vfid: VFolderID) -> None:
        self._usage.pop(vfid, None)
        self.quota_model.invalidate(vfid)

    # -- vfolders ----------------------------------------------------------------------------
    async def create_vfolder(self, vfid: VFolderID, *, mode: int = DEFAULT_VFOLDER_MODE) -> None:
        if not await self._scope_exists(vfid.quota_scope_id):
            raise QuotaScopeNotFound(f"quota scope {vfid.quota_scope_id} does not exist")
        if await self.vfolder_exists(vfid):
            raise VFolderExists(f"vfolder {vfid} already exists")
        with translate(vfid):
            await self.conn.c.put_object(Bucket=self.conn.bucket, Key=self.vfolder_prefix(vfid))

    async def delete_vfolder(self, vfid: VFolderID) -> None:
        """Out of sight at once (its marker goes first), then moved to the trash (``upkeep``),
        which the trash job empties after ``[jobs] trash-grace``."""
        prefix = await self._require_vfolder(vfid)
        await self.conn.delete_keys([prefix])
        await self.move_to_trash(vfid, prefix)
        await self.drop_snapshots(vfid)
        await self.drop_versions(vfid)
        self._changed(vfid)

    async def clone_vfolder(self, src: VFolderID, dst: VFolderID) -> None:
        src_prefix = await self._require_vfolder(src)
        if await self.vfolder_exists(dst):
            raise VFolderExists(f"vfolder {dst} already exists")
        if not await self._scope_exists(dst.quota_scope_id):
            await self._create_scope(dst.quota_scope_id)
        items = [i async for i in self.conn.iter_keys(src_prefix) if i["Key"] != src_prefix]
        dst_prefix = self.vfolder_prefix(dst)

        async def copy(item: Mapping[str, Any]) -> None:
            rest = item["Key"][len(src_prefix) :]
            await self.conn.copy(item["Key"], dst_prefix + rest, item["Size"])

        total = sum(i["Size"] for i in items if not i["Key"].endswith("/"))
        async with self.quota_model.reservation(dst) as res:
            await res.reserve(total)
            try:
                await for_each(items, copy, _COPY_CONCURRENCY)
                with translate(dst):  # the marker last: a half-made clone is never visible
                    await self.conn.c.put_object(Bucket=self.conn.bucket, Key=dst_prefix)
            except BaseException:
                await asyncio.shield(self.conn.delete_prefix(dst_prefix))
                raise
            res.used = total

    async def vfolder_exists(self, vfid: VFolderID) -> bool:
        return await self.conn.head(self.vfolder_prefix(vfid)) is not None

    async def get_vfolder_mount(self, vfid: VFolderID, subpath: RelPath = RelPath(())) -> Path:
        """No host path exists; this is where a FUSE mount of the bucket at ``path`` shows it."""
        await self._require_vfolder(vfid)
        return self.mount_path.joinpath(*vfid.relative_parts, *subpath.parts)

    async def get_usage(self, vfid: VFolderID) -> VFolderUsage:
        cached = self._usage.get(vfid)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        prefix = await self._require_vfolder(vfid)
        usage = await self._list_usage(prefix)
        self._usage[vfid] = (time.monotonic(), usage)
        return usage

    async def get_fs_usage(self) -> FSUsage:
        used = (await self._list_usage(self.key() + "/" if self.root else "")).used_bytes
        return FSUsage(capacity_bytes=max(_NO_CAPACITY, used), used_bytes=used)

    # -- files -------------------------------------------------------------------------------
    async def _kind(self, vfid: VFolderID, rel: RelPath) -> DirEntryType | None:
        """What is at ``rel``: a file, a directory (marker or keys below), or nothing."""
        if not rel.parts:
            return DirEntryType.DIRECTORY
        key = self.file_key(vfid, rel)
        if await self.conn.head(key) is not None:
            return DirEntryType.FILE
        if await self.conn.any_below(key + "/"):
            return DirEntryType.DIRECTORY
        return None

    async def scandir(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        recursive: bool = False,
        limit: int | None = SCANDIR_DEFAULT,
    ) -> AsyncIterator[DirEntry]:
        vf = await self._require_vfolder(vfid)
        kind = await self._kind(vfid, relpath)
        if kind is None:
            raise FileNotFound(f"no such file or directory: {relpath}")
        if kind is DirEntryType.FILE:
            raise NotADirectory(f"not a directory: {relpath}")
        if limit == SCANDIR_DEFAULT:
            limit = self.deps.scandir_limit or None
        prefix = self.file_key(vfid, relpath) + "/" if relpath.parts else vf
        base = "/".join(relpath.parts) + "/" if relpath.parts else ""
        seen: set[str] = set()
        count = 0
        async for item in self.conn.iter_keys(prefix, delimiter=None if recursive else "/"):
            key = item.get("Key") or item["Prefix"]
            if key == prefix:
                continue  # the directory's own marker
            rel = key[len(vf) :]
            names = [rel.rstrip("/")]
            if recursive:  # directories implied by a deeper key are listed once, before it
                parts = rel.rstrip("/").split("/")
                names = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            for i, name in enumerate(names):
                if name in seen or not name.startswith(base):
                    continue
                seen.add(name)
                is_dir = i < len(names) - 1 or key.endswith("/")
                yield dir_entry(name, item) if is_dir else file_entry(name, item)
                count += 1
                if limit is not None and count >= limit:
                    return

    async def stat(self, vfid: VFolderID, relpath: RelPath) -> DirEntry:
        if not relpath.parts:
            await self._require_vfolder(vfid)
            return dir_entry(".", {})
        key = self.file_key(vfid, relpath)
        head = await self.conn.head(key)  # a file: one HEAD, the vfolder is not looked at
        if head is not None:
            item = {"Size": head["ContentLength"], "LastModified": head["LastModified"]}
            return file_entry(str(relpath), item)
        await self._require_vfolder(vfid)
        async for item in self.conn.iter_keys(key + "/", limit=1):
            return dir_entry(str(relpath), item if item["Key"] == key + "/" else {})
        raise FileNotFound(f"no such file or directory: {relpath}")

    async def mkdir(
        self, vfid: VFolderID, relpath: RelPath, *, parents: bool = True, exist_ok: bool = False
    ) -> None:
        await self._require_vfolder(vfid)
        if not relpath.parts:
            raise FileExists("the vfolder root already exists")
        kind = await self._kind(vfid, relpath)
        if kind is DirEntryType.FILE or (kind is not None and not exist_ok):
            raise FileExists(f"already exists: {relpath}")
        if kind is not None:
            return
        ancestors = [RelPath(relpath.parts[:i]) for i in range(1, len(relpath.parts))]
        kinds = await asyncio.gather(*(self._kind(vfid, a) for a in ancestors))
        for anc, k in zip(ancestors, kinds, strict=True):
            if k is DirEntryType.FILE:
                raise NotADirectory(f"not a directory: {anc}")
            if k is None and not parents:
                raise FileNotFound(f"no such directory: {anc}")
        with translate(relpath):
            for rel in [*ancestors, relpath]:
                key = self.file_key(vfid, rel) + "/"
                await self.conn.c.put_object(Bucket=self.conn.bucket, Key=key)

    async def move_file(
        self, vfid: VFolderID, src: RelPath, dst: RelPath, *, keep: KeepVersions | None = None
    ) -> None:
        await self._require_vfolder(vfid)
        if not src.parts or not dst.parts:
            raise InvalidPath("the vfolder root cannot be moved or replaced")
        kind = await self._kind(vfid, src)
        if kind is None:
            raise FileNotFound(f"no such file or directory: {src}")
        if dst.parts[: len(src.parts)] == src.parts:
            raise InvalidPath(f"cannot move {src} into itself")
        dst_kind = await self._kind(vfid, dst)
        src_key, dst_key = self.file_key(vfid, src), self.file_key(vfid, dst)
        if kind is DirEntryType.FILE:
            if dst_kind is DirEntryType.DIRECTORY:
                raise IsADirectory(f"is a directory: {dst}")
            head = await self.conn.head(src_key)
            moved, replaced = await self._before_change(vfid, src), None
            if dst_kind is DirEntryType.FILE:
                replaced = await self._before_change(vfid, dst)
            await self.conn.copy(src_key, dst_key, head["ContentLength"] if head else 0)
            await self.conn.delete_keys([src_key])
            await self._after_change(vfid, dst, replaced, keep, "move")
            await self._after_change(vfid, src, moved, None, "move")  # it lives on at dst
        else:
            if dst_kind is DirEntryType.FILE:
                raise NotADirectory(f"not a directory: {dst}")
            if dst_kind is not None and await self.conn.any_below(dst_key + "/"):
                raise DirectoryNotEmpty(f"directory not empty: {dst}")
            items = [i async for i in self.conn.iter_keys(src_key + "/")]
            n = len(src_key)

            async def move(item: Mapping[str, Any]) -> None:
                await self.conn.copy(item["Key"], dst_key + item["Key"][n:], item["Size"])

            await for_each(items, move, _COPY_CONCURRENCY)
            with translate(dst):
                await self.conn.c.put_object(Bucket=self.conn.bucket, Key=dst_key + "/")
            await self.conn.delete_keys([i["Key"] for i in items])
            await self._moved_away(vfid, [i["Key"] for i in items])
        self._changed(vfid)

    async def delete_files(
        self,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        recursive: bool = False,
        keep: KeepVersions | None = None,
    ) -> None:
        await self._require_vfolder(vfid)
        targets = []
        for rel in relpaths:
            if not rel.parts:
                raise InvalidPath("the vfolder root cannot be deleted as a file")
            kind = await self._kind(vfid, rel)
            if kind is None:
                raise FileNotFound(f"no such file or directory: {rel}")
            targets.append((rel, kind, self.file_key(vfid, rel)))
        for rel, kind, key in targets:
            if kind is DirEntryType.FILE:
                prior = await self._before_change(vfid, rel)
                await self.conn.delete_keys([key])
                await self.deps.books.delete_file_meta(self.name, str(vfid), str(rel))
                await self._after_change(vfid, rel, prior, keep, "delete")
            elif recursive:
                await self._delete_tree(vfid, rel, keep)
            elif [i["Key"] async for i in self.conn.iter_keys(key + "/", limit=2)] == [key + "/"]:
                await self.conn.delete_keys([key + "/"])  # only its marker: empty
            else:
                raise DirectoryNotEmpty(f"directory not empty: {rel}")
        self._changed(vfid)
