"""Resumable (tus) uploads on S3: bytes staged in a local directory, published by multipart upload.

Why local staging rather than one S3 multipart upload per session: tus chunks can be any size
(S3 parts must be ≥ 5 MiB but the last), a failed checksum must truncate what was staged (S3
parts cannot be shortened), and the staged size must survive restarts cheaply.  The staging
directory is the ``staging-dir`` option (default ``<path>/.uploads``); the object appears in the
bucket only when the upload completes.  Complete parts are sent while the rest is still arriving
(``early.py``), so publishing has little left to send.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from storage_proxy.core.errors import Conflict, UploadNotFound, UploadOffsetMismatch
from storage_proxy.core.files import KeepVersions
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import VFolderID
from storage_proxy.volumes.abc import AppendOptions, StagedFile, UploadTarget
from storage_proxy.volumes.staging import LocalStagedFile, LocalStaging, LocalStagingUploads

from .data import DataMixin
from .early import EarlyParts, Target
from .multipart import file_chunks, new_hashers, put_stream


class StagingMixin(LocalStagingUploads, DataMixin):
    staging: LocalStaging
    early: EarlyParts

    def _target_file(self, session_id: str) -> Path:
        return self.staging.path(session_id).with_suffix(".target")

    async def upload_prepare(self, session_id: str, target: UploadTarget) -> None:
        """Stage as usual, and remember where the upload goes: any worker or node sharing the
        staging directory may send its parts early (``early.py``).  A partial upload is not: it
        is only ever joined into a final upload, which is sent whole when it is published (S3's
        UploadPartCopy would need each partial stored as an object first)."""
        key = self.file_key(target.vfid, target.relpath)
        record = json.dumps(
            {"key": key, "content_type": target.content_type, "checksums": target.checksums}
        ).encode()
        await self.staging.prepare(session_id)
        if target.partial:
            return
        await asyncio.to_thread(self._target_file(session_id).write_bytes, record)

    async def _upload_target(self, session_id: str) -> Target | None:
        """Where an upload session will be published (for ``early``)."""
        try:
            raw = await asyncio.to_thread(self._target_file(session_id).read_bytes)
        except FileNotFoundError:
            return None
        record = json.loads(raw)
        return Target(str(record["key"]), record.get("content_type"), bool(record.get("checksums")))

    async def upload_append(
        self,
        held: StagedFile,
        offset: int,
        stream: AsyncIterator[bytes],
        options: AppendOptions = AppendOptions(),
    ) -> int:
        session_id = held.session_id
        if options.replace:  # a whole-body PUT: what was sent early no longer holds
            await self.early.discard(session_id)
        try:
            end = await self.staging.append(held, offset, stream, options)
        except (UploadOffsetMismatch, UploadNotFound, Conflict):
            raise  # the offset was not accepted: nothing below it is known to be final
        except BaseException:
            self.early.advance(session_id, offset)
            raise
        # ``offset`` was the staged size, under the writer's lock: the bytes below it are final
        # (a refused chunk is cut back only to its own start)
        self.early.advance(session_id, offset)
        return end

    async def upload_publish(
        self,
        held: StagedFile,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        overwrite: bool = True,
        checksums: bool = False,
        content_type: str | None = None,
        keep: KeepVersions | None = None,
    ) -> None:
        assert isinstance(held, LocalStagedFile)
        session_id = held.session_id
        staged = held.path
        key = self.file_key(vfid, relpath)
        size = await asyncio.to_thread(held.size)
        prior = await self._before_change(vfid, relpath)  # before anything can replace it
        # what is at the target is checked while the last parts go up (its LIST can take tens of
        # milliseconds), and before anything becomes visible
        check = asyncio.ensure_future(self._writable_target(vfid, relpath, overwrite))
        try:
            early = await self.early.finish(session_id, key, size, content_type, checksums, check)
            if early is not None:
                result, hashers = early
            else:
                await check
                hashers = new_hashers(checksums)
                extra = {"ContentType": content_type} if content_type else {}
                result = await put_stream(  # the quota was reserved with the session
                    self.conn,
                    key,
                    file_chunks(str(staged), self.part_size),
                    part_size=self.part_size,
                    concurrency=self.options["upload-concurrency"],
                    hashers=hashers,
                    extra=extra,
                )
        finally:
            if not check.done():
                check.cancel()
            await asyncio.gather(check, return_exceptions=True)
        await self._record(vfid, relpath, result, hashers, content_type, None)
        await self._after_change(vfid, relpath, prior, keep, "overwrite")
        self._changed(vfid)
        await self.early.discard(session_id)
        # the writer's hold is ours: drop the staged file through it (discard would wait for it)
        await asyncio.to_thread(os.unlink, staged.name, dir_fd=held.dir_fd)
        await asyncio.to_thread(self._target_file(session_id).unlink, missing_ok=True)

    async def upload_discard(self, session_id: str) -> None:
        await self.early.discard(session_id)
        await self.staging.discard(session_id)
        await asyncio.to_thread(self._target_file(session_id).unlink, missing_ok=True)
