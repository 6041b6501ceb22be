"""Resumable uploads (the rules behind tus 1.0 and the manager's upload sessions).

A session is a row in the metadata store plus bytes staged in the volume; the staged size is the
truth for the offset, so an upload survives a daemon restart and resumes where it stopped.  The
declared length is reserved against the quota when the session is created — checked and recorded
in one transaction of the shared ledger, so concurrent creations on any worker or node can never
jointly exceed a limit — and released when the file is published or dropped.

Every change to the staged bytes happens while one writer holds them (the volume's
``upload_hold``: a lock every process and node sharing the volume respects, plus, with
``[redis]``, the upload's lease): appends, a whole-body PUT, discarding a refused chunk,
publication.  Each request is authorized as it arrives: the caller must still have the right to
write into the vfolder, not only have created the upload.  The file appears at its final path
only when complete.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..core.errors import (
    ChecksumMismatch,
    Gone,
    InvalidParameter,
    PermissionDenied,
    QuotaExceeded,
    UploadNotFound,
)
from ..core.paths import RelPath
from ..core.records import Permission, Shortfall, UploadSession
from ..core.types import VFolderID
from ..infra.redis import RedisLeases
from ..metadata.store import MetadataStore
from ..volumes.abc import AbstractVolume, AppendOptions, StagedFile, UploadTarget
from ..volumes.registry import VolumeRegistry
from .access import Actor
from .audit import AuditLog
from .gate import Gate, refuse_oversize
from .keeping import VersionSettings

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


class UploadIncomplete(InvalidParameter):
    code, title = "upload-incomplete", "The body ended before the declared length"


class ConcatInvalid(InvalidParameter):
    code, title = "upload-concat-invalid", "These uploads cannot be concatenated"


class PartialIncomplete(InvalidParameter):
    code, title = "upload-partial-incomplete", "A partial upload has not received all its bytes"


class FinalUploadImmutable(PermissionDenied):
    code, title = "upload-final-immutable", "A final (concatenated) upload takes no more bytes"


#: At most this many partial uploads in one final upload.
MAX_CONCAT_PARTS = 256


def concat_role(session: UploadSession) -> str | None:
    """``partial``, ``final`` or None (a plain upload) — tus concatenation."""
    role = session.metadata.get("concat")
    return role if role in ("partial", "final") else None


def concat_parts(session: UploadSession) -> list[str]:
    """The ids of the partial uploads a final upload joined, in order."""
    return [str(p) for p in session.metadata.get("parts", ())]


def concat_length(session: UploadSession) -> int | None:
    """The declared length, the one of a final upload included (its row holds no quota: its
    partials do, until it is published)."""
    if concat_role(session) == "final":
        return int(session.metadata.get("concat_length", 0))
    return session.length


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


def _content_type(meta: Mapping[str, Any]) -> str | None:
    """The content type a session's file is published with (tus clients send ``filetype``)."""
    return meta.get("content_type") or meta.get("filetype") or None


def _refuse_final(session: UploadSession) -> None:
    if concat_role(session) == "final":
        raise FinalUploadImmutable("a final upload is made of its partial uploads: no PATCH")


def _quota_error(vfid: VFolderID, short: Shortfall, nbytes: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"{nbytes} bytes do not fit the quota of {short.key} (for {vfid}): "
        f"{short.remaining} bytes left",
        remaining_bytes=short.remaining,
    )


class UploadService:
    def __init__(
        self,
        metadata: MetadataStore,
        volumes: VolumeRegistry,
        gate: Gate,
        *,
        max_upload_size: int,
        default_expiry: timedelta,
        audit: AuditLog | None = None,
        on_received: Callable[[str, int], None] | None = None,
        on_published: Callable[[str, VFolderID], Awaitable[None]] | None = None,
        leases: RedisLeases | None = None,
        versions: VersionSettings | None = None,
    ) -> None:
        self._versions = versions  # a vfolder's versions = N: what a publish replaces is kept
        self._gate = gate  # the right to write, busy vfolders, paths, a quick quota refusal
        self._audit = audit or AuditLog()
        self._on_published = on_published  # (volume, vfid): cached usage, quota alerts
        self._on_received = on_received  # (volume, bytes): for the upload-bytes metric
        self.leases = leases  # one writer per upload across nodes, when [redis] is configured
        self._metadata = metadata
        self._volumes = volumes
        self.max_upload_size = max_upload_size
        self.default_expiry = default_expiry

    # -- sessions ------------------------------------------------------------------------------
    async def create(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        length: int | None,
        *,
        metadata: dict[str, Any] | None = None,
        expires_in: timedelta | None = None,
    ) -> UploadSession:
        """A session for ``actor`` (a user's is theirs alone: ``open`` checks who asks)."""
        if not relpath.parts:
            raise InvalidParameter("an upload needs a file path below the vfolder root")
        if length is not None:
            if length < 0:
                raise InvalidParameter("Upload-Length must not be negative")
            self._check_size(length)
        volume = await self._gate.enter(
            actor, volume_name, vfid, Permission.RW, relpath=relpath, nbytes=length,
            op="file.upload",
        )  # fmt: skip
        owner = actor.user.sub if actor.user is not None else None
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
        buckets = await volume.quota_model.buckets(vfid) if length else []
        short = await self._metadata.create_upload(session, buckets, now)
        if short is not None:
            raise _quota_error(vfid, short, length or 0)
        content_type = _content_type(session.metadata)
        try:
            partial = concat_role(session) == "partial"
            checksums = bool(session.metadata.get("checksums", False))
            target = UploadTarget(vfid, relpath, content_type, partial, checksums)
            await volume.upload_prepare(session.id, target)
        except BaseException:
            await self._metadata.delete_upload(session.id)  # no session without its staging
            raise
        log.info("upload %s created for %s:%s/%s", session.id, volume_name, vfid, relpath)
        return session

    def _check_size(self, length: int) -> None:
        if length > self.max_upload_size:
            raise UploadTooLarge(
                f"{length} bytes exceed the maximum upload size of {self.max_upload_size}"
            )

    async def get(self, upload_id: str) -> UploadSession:
        session = await self._metadata.get_upload(upload_id)
        if session is None:
            raise UploadNotFound(f"no upload {upload_id}")
        if session.expires_at < time.time():
            await self.terminate(session)
            raise Gone(f"upload {upload_id} has expired")
        return session

    async def open(self, actor: Actor, upload_id: str) -> UploadSession:
        """The upload, for a caller who may still write into its vfolder.

        A user's upload is theirs alone: someone else's does not exist (404), and a creator
        whose right was revoked since is refused as any caller without the right would be (404
        or 403).  A token (a grant) must be for this upload's vfolder."""
        session = await self.get(upload_id)
        if actor.user is not None and session.owner != actor.user.sub:
            raise UploadNotFound(f"no upload {upload_id}")
        vfid = VFolderID.parse(session.vfid)
        await self._gate.enter(actor, session.volume, vfid, Permission.RW, op="file.upload")
        return session

    async def current_offset(self, session: UploadSession) -> int:
        if concat_role(session) == "final":
            return session.offset  # joined and published when it was created
        return await self._volumes.get(session.volume).upload_size(session.id)

    # -- receiving bytes -----------------------------------------------------------------------
    async def append(
        self,
        session: UploadSession,
        client_offset: int,
        stream: AsyncIterator[bytes],
        checksum: Checksum | None = None,
        *,
        declare_length: int | None = None,
    ) -> AppendResult:
        """A tus PATCH: bytes at ``client_offset`` (and, with ``declare_length``, the length of
        an upload created with a deferred one), under the upload's single writer."""
        _refuse_final(session)
        async with self._writer(session) as (volume, held):
            if declare_length is not None:
                await self._declare_length(volume, session, held, declare_length)
            return await self._append(volume, session, held, client_offset, stream, checksum)

    async def put(
        self, session: UploadSession, stream: AsyncIterator[bytes], declared: int | None
    ) -> AppendResult:
        """A whole-body PUT: replaces whatever is staged, all or nothing."""
        _refuse_final(session)
        if declared is not None and session.length is not None and declared != session.length:
            raise InvalidParameter(
                f"the body has {declared} bytes but the upload was declared as {session.length}"
            )
        async with self._writer(session) as (volume, held):
            return await self._append(volume, session, held, 0, stream, None, replace=True)

    @asynccontextmanager
    async def _writer(
        self, session: UploadSession
    ) -> AsyncIterator[tuple[AbstractVolume, StagedFile]]:
        volume = self._volumes.get(session.volume)
        if self.leases is None:
            async with volume.upload_hold(session.id) as held:
                yield volume, held
            return
        async with self.leases.hold(f"upload:{session.id}"):  # one writer across nodes
            async with volume.upload_hold(session.id) as held:
                yield volume, held

    async def _declare_length(
        self, volume: AbstractVolume, session: UploadSession, held: StagedFile, length: int
    ) -> None:
        if session.length is not None:
            if session.length != length:
                raise InvalidParameter("Upload-Length cannot change once declared")
            return
        if length < 0:
            raise InvalidParameter("Upload-Length must not be negative")
        self._check_size(length)
        staged = await volume.upload_size(session.id)
        if length < staged:
            raise InvalidParameter(
                f"Upload-Length {length} is shorter than the {staged} bytes already received"
            )
        vfid = VFolderID.parse(session.vfid)
        await refuse_oversize(volume, vfid, length - staged)
        short = await self._metadata.update_upload(
            session.id,
            offset=staged,
            length=length,
            buckets=await volume.quota_model.buckets(vfid),
            now=time.time(),
        )
        if short is not None:
            raise _quota_error(vfid, short, length - staged)
        session.length = length

    async def _append(
        self,
        volume: AbstractVolume,
        session: UploadSession,
        held: StagedFile,
        start: int,
        stream: AsyncIterator[bytes],
        checksum: Checksum | None,
        *,
        replace: bool = False,
    ) -> AppendResult:
        limit = (session.length if session.length is not None else self.max_upload_size) - start
        hasher = CHECKSUM_ALGORITHMS[checksum.algorithm]() if checksum else None
        vfid = VFolderID.parse(session.vfid)
        received = 0
        # A declared length is held by the session itself; a deferred one grows as it streams.
        reservation = volume.quota_model.reservation(vfid, counts_as_written=False)

        async def guarded() -> AsyncIterator[bytes]:
            nonlocal received
            async for chunk in stream:
                received += len(chunk)
                if received > limit:
                    raise UploadExceedsLength(
                        f"the body goes past the declared Upload-Length ({session.length})"
                        if session.length is not None
                        else f"the upload goes past the maximum size ({self.max_upload_size})"
                    )
                if session.length is None:
                    await reservation.consume(len(chunk))
                yield chunk  # hashed (``options.hashers``) as it is written, off the loop

        def verify() -> None:
            if hasher is not None and checksum is not None and hasher.digest() != checksum.digest:
                raise ChecksumMismatch(
                    f"the chunk's {checksum.algorithm} does not match; discarded"
                )
            if replace and (session.length is None or received != session.length):
                raise UploadIncomplete(
                    f"the body ended after {received} of {session.length} bytes; nothing was stored"
                )

        options = AppendOptions(
            replace=replace,
            keep_partial=checksum is None and not replace,
            verify=verify,
            hashers=() if hasher is None else (hasher,),
        )
        try:
            async with reservation:
                new_offset = await volume.upload_append(held, start, guarded(), options)
        except BaseException:
            if received and options.keep_partial:
                await self._record_offset(session)
            raise
        session.offset = new_offset
        if self._on_received is not None:
            self._on_received(session.volume, new_offset - start)
        complete = session.length is not None and new_offset >= session.length
        if complete and concat_role(session) != "partial":  # a partial stays until joined
            await self._complete(volume, session, held)
            return AppendResult(new_offset, True)
        await self._metadata.update_upload(session.id, offset=new_offset, length=session.length)
        return AppendResult(new_offset, complete)

    async def _record_offset(self, session: UploadSession) -> None:
        try:
            staged = await self.current_offset(session)
            await self._metadata.update_upload(session.id, offset=staged, length=session.length)
        except Exception:  # best effort: the staged size stays the truth
            log.debug("could not record the offset of upload %s", session.id, exc_info=True)

    async def _complete(
        self, volume: AbstractVolume, session: UploadSession, held: StagedFile
    ) -> None:
        vfid = VFolderID.parse(session.vfid)
        await self._gate.writable(session.volume, vfid)
        meta = session.metadata
        audit = self._audit.operation(
            "file.upload", session.volume, vfid, path=session.relpath, nbytes=session.offset
        )
        async with audit as entry:
            entry.extra["upload_id"] = session.id
            keep = (
                None if self._versions is None else await self._versions.keep(session.volume, vfid)
            )
            await volume.upload_publish(
                held,
                vfid,
                RelPath.parse(session.relpath),
                overwrite=bool(meta.get("overwrite", True)),
                checksums=bool(meta.get("checksums", False)),
                content_type=_content_type(meta),
                keep=keep,
            )
            # Counted as written before the session stops holding it: never uncounted between.
            await volume.quota_model.record_written(vfid, session.offset)
            if concat_role(session) == "final":  # answers HEAD until it expires; holds nothing
                await self._metadata.update_upload(session.id, offset=session.offset, length=0)
            else:
                await self._metadata.delete_upload(session.id)
        if self._on_published is not None:
            await self._on_published(session.volume, vfid)
        log.info("upload %s complete: %d bytes at %s", session.id, session.offset, session.relpath)

    # -- tus concatenation: partial uploads joined into a final one ---------------------------
    async def concat(
        self,
        actor: Actor,
        volume_name: str,
        vfid: VFolderID,
        relpath: RelPath,
        part_ids: Sequence[str],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> UploadSession:
        """The final upload: the complete partial uploads ``part_ids`` (the actor's own, into
        this vfolder) joined in order and published at ``relpath``, then released."""
        if not part_ids or len(part_ids) > MAX_CONCAT_PARTS:
            raise ConcatInvalid(f"a final upload joins 1 to {MAX_CONCAT_PARTS} partial uploads")
        if len(set(part_ids)) != len(part_ids):
            raise ConcatInvalid("a partial upload is named twice")
        if not relpath.parts:
            raise InvalidParameter("an upload needs a file path below the vfolder root")
        volume = await self._gate.enter(
            actor, volume_name, vfid, Permission.RW, relpath=relpath, op="file.upload"
        )
        parts = [await self._partial(actor, volume_name, vfid, pid) for pid in part_ids]
        total = sum(p.length or 0 for p in parts)
        self._check_size(total)
        now = time.time()
        expires = now + self.default_expiry.total_seconds()
        meta = {**(metadata or {}), "concat": "final", "parts": list(part_ids)}
        session = UploadSession(
            id=uuid.uuid4().hex, volume=volume_name, vfid=str(vfid), relpath=str(relpath),
            length=0, offset=0, created_at=now, expires_at=expires,
            owner=actor.user.sub if actor.user is not None else None,
            metadata={**meta, "concat_length": total},
        )  # fmt: skip
        await self._metadata.create_upload(session, (), now)  # its partials hold the quota
        try:
            await volume.upload_prepare(session.id, UploadTarget(vfid, relpath))
            await self._join(volume, session, parts)
        except BaseException:
            await self.terminate(session)  # the partials are as they were
            raise
        for part in parts:  # no session refers to them any more: nobody holds them
            await volume.upload_discard(part.id)
        return session

    async def _partial(
        self, actor: Actor, volume_name: str, vfid: VFolderID, part_id: str
    ) -> UploadSession:
        """A partial upload the actor may join here: their own (someone else's does not exist),
        into the same vfolder."""
        part = await self.get(part_id)
        if actor.user is None or part.owner != actor.user.sub:
            raise UploadNotFound(f"no upload {part_id}")
        if (part.volume, part.vfid) != (volume_name, str(vfid)):
            raise ConcatInvalid(f"upload {part_id} belongs to another vfolder")
        if concat_role(part) != "partial":
            raise ConcatInvalid(f"upload {part_id} is not a partial upload")
        return part

    async def _join(
        self, volume: AbstractVolume, session: UploadSession, parts: list[UploadSession]
    ) -> None:
        """Under every partial's single writer and the final's: join, publish, release."""
        async with AsyncExitStack() as stack:
            held_parts: list[StagedFile] = []
            for part in parts:
                _, held = await stack.enter_async_context(self._writer(part))
                if await self._metadata.get_upload(part.id) is None:  # joined meanwhile
                    raise UploadNotFound(f"no upload {part.id}")
                staged = await volume.upload_size(part.id)
                if part.length is None or staged != part.length:
                    raise PartialIncomplete(
                        f"upload {part.id} has {staged} of {part.length} bytes", upload=part.id
                    )
                held_parts.append(held)
            _, final = await stack.enter_async_context(self._writer(session))
            session.offset = await volume.upload_concat(final, held_parts)
            session.length = session.offset
            await self._complete(volume, session, final)
            for part in parts:  # written bytes are counted: the partials' holdings go
                await self._metadata.delete_upload(part.id)

    # -- ending sessions -------------------------------------------------------------------------
    async def terminate(self, session: UploadSession) -> None:
        """Drop the session and its bytes; Conflict while a writer is receiving data."""
        volume = self._volumes.get(session.volume)
        await volume.upload_discard(session.id)
        await self._metadata.delete_upload(session.id)

    async def expire(self, now: float | None = None) -> int:
        """Drop every expired session that nobody is writing to; returns how many."""
        expired = await self._metadata.list_uploads(expired_before=now or time.time())
        dropped = 0
        for session in expired:
            try:
                await self.terminate(session)
            except Exception as e:  # receiving data right now: the next run takes it
                log.info("expired upload %s not dropped yet: %s", session.id, e)
                continue
            dropped += 1
        return dropped
