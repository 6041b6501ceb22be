"""Resumable (tus) uploads on S3: bytes staged in a local directory, published by multipart upload.

Why local staging rather than one S3 multipart upload per session: tus chunks can be any size
(S3 parts must be ≥ 5 MiB but the last), a failed checksum must truncate what was staged (S3
parts cannot be shortened), and the staged size must survive restarts cheaply.  The staging
directory is the ``staging-dir`` option (default ``<path>/.uploads``); the object appears in the
bucket only when the upload completes.
"""

from __future__ import annotations

from storage_proxy.paths import RelPath
from storage_proxy.types import VFolderID
from storage_proxy.volumes.staging import LocalStaging, LocalStagingUploads

from .data import DataMixin, new_hashers
from .multipart import file_chunks, put_stream


class StagingMixin(LocalStagingUploads, DataMixin):
    staging: LocalStaging

    async def upload_publish(
        self,
        session_id: str,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        overwrite: bool = True,
        checksums: bool = False,
        content_type: str | None = None,
    ) -> None:
        staged = self._staged(session_id)
        await self._writable_target(vfid, relpath, overwrite)
        hashers = new_hashers(checksums)
        extra = {"ContentType": content_type} if content_type else {}
        result = await put_stream(  # the quota was reserved when the session was created
            self.conn,
            self.file_key(vfid, relpath),
            file_chunks(str(staged), self.part_size),
            part_size=self.part_size,
            concurrency=self.options["upload-concurrency"],
            hashers=hashers,
            extra=extra,
        )
        await self._record(vfid, relpath, result, hashers, content_type, None)
        self._changed(vfid)
        await self.upload_discard(session_id)
