"""Resumable uploads (the rules behind tus 1.0 and the manager's upload sessions).

A session is a row in the metadata store plus bytes staged in the volume; the staged size is the
truth for the offset, so an upload survives a daemon restart and resumes where it stopped.  The
declared length is reserved against the quota when the session is created (so concurrent uploads
into one scope can never jointly exceed it) and released when the file is published or dropped.
The file appears at its final path only when complete.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import (
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidParameter,
    QuotaExceeded,
    UploadNotFound,
    UploadOffsetMismatch,
)
from ..infra.redis import RedisLeases
from ..metadata.store import MetadataStore, UploadSession
from ..paths import RelPath
from ..types import VFolderID
from ..volumes.abc import AbstractVolume
from ..volumes.registry import VolumeRegistry

log = logging.getLogger(__name__)

CHECKSUM_ALGORITHMS: Mapping[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}


class UploadTooLarge(QuotaExceeded):
    code, title = "upload-too-large", "Upload exceeds the maximum upload size"


class UploadExceedsLength(InvalidParameter):
    code, title = "upload-exceeds-length", "More bytes than the declared Upload-Length"


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str
    digest: bytes

    @classmethod
    def parse_header(cls, header: str) -> Checksum:
        """``Upload-Checksum: <algorithm> <base64 digest>`` (tus checksum extension)."""
        algorithm, _, encoded = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise InvalidParameter(
                f"unsupported checksum algorithm {algorithm!r}; "
                f"supported: {', '.join(CHECKSUM_ALGORITHMS)}"
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            raise InvalidParameter("Upload-Checksum digest is not valid base64") from None
        return cls(algorithm, digest)


@dataclass(frozen=True, slots=True)
class AppendResult:
    offset: int
    complete: bool


class UploadService:
    def __init__(
        self,
        metadata: MetadataStore,
        volumes: VolumeRegistry,
        *,
        max_upload_size: int,
        default_expiry: timedelta,
        on_received: Callable[[str, int], None] | None = None,
        ensure_writable: Callable[[str, str], Awaitable[None]] | None = None,
        on_published: Callable[[str, VFolderID], Awaitable[None]] | None = None,
    ) -> None:
        self._on_published = on_published  # (volume, vfid): drops the vfolder's cached usage
        # 409 while a clone or delete holds the vfolder (the background task service's check).
        self._ensure_writable = ensure_writable
        self._on_received = on_received  # (volume, bytes): for the upload-bytes metric
        self.leases: RedisLeases | None = None  # set when [redis] is configured
        self._metadata = metadata
        self._volumes = volumes
        self.max_upload_size = max_upload_size
        self.default_expiry = default_expiry
        self._create_lock = asyncio.Lock()  # quota check + reservation must not interleave
        self._busy: set[str] = set()  # sessions with a PATCH in flight on this node

    async def create(
        self,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        length: int | None,
        *,
        owner: str | None = None,
        metadata: dict[str, Any] | None = None,
        expires_in: timedelta | None = None,
    ) -> UploadSession:
        volume = self._volumes.get(volume_name)
        if not relpath.parts:
            raise InvalidParameter("an upload needs a file path below the vfolder root")
        if self._ensure_writable is not None:
            await self._ensure_writable(volume_name, str(vfid))
        await volume.get_vfolder_mount(vfid, relpath.parent)  # vfolder exists, path stays inside
        if length is not None:
            if length < 0:
                raise InvalidParameter("Upload-Length must not be negative")
            if length > self.max_upload_size:
                raise UploadTooLarge(
                    f"{length} bytes exceed the maximum upload size of {self.max_upload_size}"
                )
        now = time.time()
        session = UploadSession(
            id=uuid.uuid4().hex,
            volume=volume_name,
            vfid=str(vfid),
            relpath=str(relpath),
            length=length,
            offset=0,
            created_at=now,
            expires_at=now + (expires_in or self.default_expiry).total_seconds(),
            owner=owner,
            metadata=dict(metadata or {}),
        )
        async with self._create_lock:
            if length:
                remaining = await volume.quota_model.headroom(vfid)
                if remaining is not None and length > remaining:
                    raise QuotaExceeded(
                        f"{length} bytes do not fit the quota of {vfid}: {remaining} bytes left",
                        remaining_bytes=remaining,
                    )
            await volume.upload_prepare(session.id)
            await self._metadata.create_upload(session)
        log.info("upload %s created for %s:%s/%s", session.id, volume_name, vfid, relpath)
        return session

    async def get(self, upload_id: str) -> UploadSession:
        session = await self._metadata.get_upload(upload_id)
        if session is None:
            raise UploadNotFound(f"no upload {upload_id}")
        if session.expires_at < time.time():
            await self.terminate(session)
            raise Gone(f"upload {upload_id} has expired")
        return session

    async def current_offset(self, session: UploadSession) -> int:
        return await self._volumes.get(session.volume).upload_size(session.id)

    async def declare_length(self, session: UploadSession, length: int) -> None:
        if session.length is not None:
            if session.length != length:
                raise InvalidParameter("Upload-Length cannot change once declared")
            return
        if length > self.max_upload_size:
            raise UploadTooLarge(f"{length} bytes exceed the maximum upload size")
        volume = self._volumes.get(session.volume)
        vfid = VFolderID.parse(session.vfid)
        async with self._create_lock:
            remaining = await volume.quota_model.headroom(vfid)
            staged = await self.current_offset(session)
            if remaining is not None and length - staged > remaining:
                raise QuotaExceeded(f"{length} bytes do not fit the quota of {vfid.quota_scope_id}")
            session.length = length
            await self._metadata.update_upload(session.id, offset=staged, length=length)

    async def append(
        self,
        session: UploadSession,
        client_offset: int,
        stream: AsyncIterator[bytes],
        checksum: Checksum | None = None,
    ) -> AppendResult:
        if session.id in self._busy:
            raise Conflict(f"upload {session.id} is already receiving data")
        self._busy.add(session.id)
        try:
            if self.leases is None:
                return await self._append(session, client_offset, stream, checksum)
            async with self.leases.hold(f"upload:{session.id}"):  # one writer across nodes
                return await self._append(session, client_offset, stream, checksum)
        finally:
            self._busy.discard(session.id)

    async def _append(
        self,
        session: UploadSession,
        client_offset: int,
        stream: AsyncIterator[bytes],
        checksum: Checksum | None,
    ) -> AppendResult:
        volume = self._volumes.get(session.volume)
        start = client_offset  # the volume checks it against the staged size, under its lock
        limit = (session.length if session.length is not None else self.max_upload_size) - start
        hasher = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
        vfid = VFolderID.parse(session.vfid)
        reservation = None
        if session.length is None and hasattr(volume.quota_model, "reservation"):
            reservation = volume.quota_model.reservation(vfid)

        async def guarded() -> AsyncIterator[bytes]:
            received = 0
            async for chunk in stream:
                received += len(chunk)
                if received > limit:
                    raise UploadExceedsLength(
                        f"the body goes past the declared Upload-Length ({session.length})"
                        if session.length is not None
                        else f"the upload goes past the maximum size ({self.max_upload_size})"
                    )
                if reservation is not None:
                    await reservation.consume(len(chunk))
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk

        try:
            if reservation is not None:
                async with reservation:
                    new_offset = await volume.upload_append(session.id, start, guarded())
            else:
                new_offset = await volume.upload_append(session.id, start, guarded())
        except UploadOffsetMismatch:
            raise  # nothing was written, and the staged bytes are not ours to cut
        except (UploadExceedsLength, QuotaExceeded):
            await volume.upload_truncate(session.id, start)
            raise
        except BaseException:
            if checksum is not None:  # an unverifiable chunk is not kept
                await volume.upload_truncate(session.id, start)
            else:
                await self._record_offset(session)
            raise
        if hasher is not None and checksum is not None and hasher.digest() != checksum.digest:
            await volume.upload_truncate(session.id, start)
            raise ChecksumMismatch(f"the chunk's {checksum.algorithm} does not match; discarded")
        session.offset = new_offset
        if self._on_received is not None:
            self._on_received(session.volume, new_offset - start)
        if session.length is not None and new_offset >= session.length:
            await self._complete(volume, session)
            return AppendResult(new_offset, True)
        await self._metadata.update_upload(session.id, offset=new_offset, length=session.length)
        return AppendResult(new_offset, False)

    async def _record_offset(self, session: UploadSession) -> None:
        try:
            staged = await self.current_offset(session)
            await self._metadata.update_upload(session.id, offset=staged, length=session.length)
        except Exception:  # best effort: the staged size stays the truth
            log.debug("could not record the offset of upload %s", session.id, exc_info=True)

    async def _complete(self, volume: AbstractVolume, session: UploadSession) -> None:
        vfid = VFolderID.parse(session.vfid)
        if self._ensure_writable is not None:
            await self._ensure_writable(session.volume, session.vfid)
        meta = session.metadata
        await volume.upload_publish(
            session.id,
            vfid,
            RelPath.parse(session.relpath),
            overwrite=bool(meta.get("overwrite", True)),
            checksums=bool(meta.get("checksums", False)),
            content_type=meta.get("content_type") or meta.get("filetype"),
        )
        await self._metadata.delete_upload(session.id)
        volume.quota_model.record_written(vfid, session.offset)
        if self._on_published is not None:
            await self._on_published(session.volume, vfid)
        log.info("upload %s complete: %d bytes at %s", session.id, session.offset, session.relpath)

    async def terminate(self, session: UploadSession) -> None:
        if session.id in self._busy:
            raise Conflict(f"upload {session.id} is receiving data; retry when it stops")
        try:
            volume = self._volumes.get(session.volume)
            await volume.upload_discard(session.id)
        finally:
            await self._metadata.delete_upload(session.id)

    async def expire(self, now: float | None = None) -> int:
        """Drop every expired session; returns how many were removed."""
        expired = await self._metadata.list_uploads(expired_before=now or time.time())
        for session in expired:
            if session.id not in self._busy:
                await self.terminate(session)
        return len(expired)
