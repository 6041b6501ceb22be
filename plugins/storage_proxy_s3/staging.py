"""Resumable (tus) uploads on S3: bytes staged in a local directory, published by multipart upload.

Why local staging rather than one S3 multipart upload per session: tus chunks can be any size
(S3 parts must be ≥ 5 MiB but the last), a failed checksum must truncate what was staged (S3
parts cannot be shortened), and the staged size must survive restarts cheaply.  The staging
directory is the ``staging-dir`` option (default ``<path>/.uploads``); the object appears in the
bucket only when the upload completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from storage_proxy.errors import (
    FileExists,
    IsADirectory,
)
from storage_proxy.paths import RelPath
from storage_proxy.types import DirEntryType, VFolderID
from storage_proxy.volumes.abc import AbstractVolume, StagedFile
from storage_proxy.volumes.staging import LocalStagedFile, LocalStaging, LocalStagingUploads

from .client import S3Connection
from .multipart import file_chunks, put_stream

_READ_CHUNK = 8 << 20


class StagingMixin(LocalStagingUploads, AbstractVolume):
    conn: S3Connection
    staging: LocalStaging
    part_size: int

    # provided by S3Volume
    def file_key(self, vfid: VFolderID, rel: RelPath) -> str:
        raise NotImplementedError

    async def _require_vfolder(self, vfid: VFolderID) -> str:
        raise NotImplementedError

    async def _kind(self, vfid: VFolderID, rel: RelPath) -> DirEntryType | None:
        raise NotImplementedError

    def _changed(self, vfid: VFolderID) -> None:
        raise NotImplementedError

    async def upload_publish(
        self,
        held: StagedFile,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        overwrite: bool = True,
        checksums: bool = False,
        content_type: str | None = None,
    ) -> None:
        assert isinstance(held, LocalStagedFile)
        staged = held.path
        await self._require_vfolder(vfid)
        if not relpath.parts:
            raise IsADirectory("cannot write over the vfolder root")
        kind = await self._kind(vfid, relpath)
        if kind is DirEntryType.DIRECTORY:
            raise IsADirectory(f"is a directory: {relpath}")
        if kind is not None and not overwrite:
            raise FileExists(f"already exists: {relpath}")
        hashers: list[Any] = [hashlib.sha256(), hashlib.md5()] if checksums else []
        extra = {"ContentType": content_type} if content_type else {}
        result = await put_stream(  # the quota was reserved when the session was created
            self.conn,
            self.file_key(vfid, relpath),
            file_chunks(str(staged), _READ_CHUNK),
            part_size=self.part_size,
            concurrency=self.options["upload-concurrency"],
            hashers=hashers,
            extra=extra,
        )
        record: dict[str, Any] = {
            "etag": result.etag,
            "sha256": hashers[0].hexdigest() if hashers else None,
            "md5": hashers[1].hexdigest() if hashers else None,
            "content_type": content_type,
            "tags": {},
        }
        await self.deps.metadata.put_file_meta(self.name, str(vfid), str(relpath), record)
        self._changed(vfid)
        await asyncio.to_thread(os.unlink, staged.name, dir_fd=held.dir_fd)  # held: ours to drop
