"""Reading and writing objects: ranged streaming GETs with read-ahead, streaming PUTs (multipart
for large or unknown lengths) under the proxy's quota reservation, and file metadata (checksums,
content type, tags) kept in the metadata store keyed by the object's ETag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from storage_proxy.core.errors import FileExists, FileNotFound, IsADirectory
from storage_proxy.core.files import KeepVersions, RawBody
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import DirEntryType, FileMeta, VFolderID
from storage_proxy.volumes.abc import AbstractVolume, ReadOptions, WriteOptions
from storage_proxy.volumes.quota import ProxyQuotaModel

from .client import S3Connection, translate
from .entries import file_meta
from .multipart import PutResult, new_hashers, prefetched, put_stream
from .rawget import raw_get

if TYPE_CHECKING:
    from .versions import Prior

#: How many bytes of a GET's body aiohttp may hold before it stops reading the socket.  Its
#: default (twice its 64 KiB read buffer) pauses and resumes the connection every few reads at
#: loopback speeds; with a few MiB S3 keeps sending while the client side drains (measured on
#: RGW: about a quarter less CPU per byte in the daemon, 5-10 % more throughput).
READ_AHEAD = 4 << 20


def read_ahead(content: Any, size: int = READ_AHEAD) -> None:
    """Let an aiohttp response body buffer up to ``size`` bytes (no-op on other bodies)."""
    if hasattr(content, "_high_water") and hasattr(content, "_low_water"):
        content._high_water = max(content._high_water, size)
        content._low_water = max(content._low_water, size // 2)


async def stream_body(response: Any, chunk_size: int, what: object) -> AsyncIterator[bytes]:
    """A GET's body in chunks, read ahead; the connection released however the reader stops."""
    body = response["Body"]
    content = getattr(getattr(body, "raw_stream", None), "content", None)
    try:
        with translate(what):
            if content is not None:
                read_ahead(content)
                async for chunk in prefetched(content.iter_any(), chunk_size):
                    yield chunk
            else:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
    finally:
        body.close()


async def read_object(
    conn: S3Connection, key: str, version: str | None, options: ReadOptions, what: object
) -> AsyncIterator[bytes]:
    """One object's bytes (one ``version`` of it, if given), ``options``' range of them."""
    kw: dict[str, Any] = {"Bucket": conn.bucket, "Key": key}
    if version is not None:
        kw["VersionId"] = version
    if options.offset or options.length is not None:
        end = "" if options.length is None else str(options.offset + options.length - 1)
        kw["Range"] = f"bytes={options.offset}-{end}"
    with translate(what):
        r = await conn.c.get_object(**kw)
    async for chunk in stream_body(r, options.chunk_size, what):
        yield chunk


class DataMixin(AbstractVolume):
    conn: S3Connection
    part_size: int
    options: dict[str, Any]
    quota_model: ProxyQuotaModel
    _usage: dict[VFolderID, Any]

    # provided by S3Volume
    def file_key(self, vfid: VFolderID, rel: RelPath) -> str:
        raise NotImplementedError

    async def _require_vfolder(self, vfid: VFolderID) -> str:
        raise NotImplementedError

    async def _kind(self, vfid: VFolderID, rel: RelPath) -> DirEntryType | None:
        raise NotImplementedError

    def _changed(self, vfid: VFolderID) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # the versions part's (it comes first)

        async def _before_change(self, vfid: VFolderID, rel: RelPath) -> Prior | None: ...

        async def _after_change(
            self,
            vfid: VFolderID,
            rel: RelPath,
            prior: Prior | None,
            keep: KeepVersions | None,
            reason: str,
        ) -> None: ...

    # -- data --------------------------------------------------------------------------------
    async def read(
        self, vfid: VFolderID, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]:
        if not relpath.parts or options.length == 0:
            await self._require_vfolder(vfid)
            if not relpath.parts:
                raise IsADirectory("the vfolder root is a directory")
            return
        kw: dict[str, Any] = {"Bucket": self.conn.bucket, "Key": self.file_key(vfid, relpath)}
        if options.offset or options.length is not None:
            end = "" if options.length is None else str(options.offset + options.length - 1)
            kw["Range"] = f"bytes={options.offset}-{end}"
        try:  # straight to the GET: the vfolder is looked at only when the key is not there
            with translate(relpath):
                r = await self.conn.c.get_object(**kw)
        except FileNotFound:
            await self._missing(vfid, relpath)
        async for chunk in stream_body(r, options.chunk_size, relpath):
            yield chunk

    async def open_raw_read(
        self, vfid: VFolderID, relpath: RelPath, offset: int, length: int
    ) -> RawBody | None:
        if not relpath.parts:
            return None
        return await raw_get(self.conn, self.file_key(vfid, relpath), offset, length)

    async def _missing(self, vfid: VFolderID, relpath: RelPath) -> NoReturn:
        """Why there is no object at ``relpath``: no vfolder, a directory, or nothing."""
        await self._require_vfolder(vfid)
        if await self._kind(vfid, relpath) is DirEntryType.DIRECTORY:
            raise IsADirectory(f"is a directory: {relpath}")
        raise FileNotFound(f"no such file: {relpath}")

    async def write(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        stream: AsyncIterator[bytes],
        options: WriteOptions = WriteOptions(),
    ) -> FileMeta:
        kind = await self._writable_target(vfid, relpath, options.overwrite)
        prior = await self._before_change(vfid, relpath) if kind is not None else None
        hashers = new_hashers(options.checksums)
        extra = {"ContentType": options.content_type} if options.content_type else {}
        async with self.quota_model.reservation(vfid) as res:
            if options.size_hint:
                await res.reserve(options.size_hint)
            result = await put_stream(
                self.conn,
                self.file_key(vfid, relpath),
                stream,
                part_size=self.part_size,
                concurrency=self.options["upload-concurrency"],
                hashers=hashers,
                on_chunk=res.consume,
                extra=extra,
            )
        self._usage.pop(vfid, None)
        if kind is not None:
            self.quota_model.invalidate(vfid)  # the old object's bytes are gone
        await self._record(vfid, relpath, result, hashers, options.content_type, options.tags)
        await self._after_change(vfid, relpath, prior, options.keep, "overwrite")
        return await self.get_file_meta(vfid, relpath)

    async def _writable_target(
        self, vfid: VFolderID, relpath: RelPath, overwrite: bool
    ) -> DirEntryType | None:
        """What is at ``relpath`` now (None or a file), refusing what a write must not replace."""
        await self._require_vfolder(vfid)
        if not relpath.parts:
            raise IsADirectory("cannot write over the vfolder root")
        kind = await self._kind(vfid, relpath)
        if kind is DirEntryType.DIRECTORY:
            raise IsADirectory(f"is a directory: {relpath}")
        if kind is not None and not overwrite:
            raise FileExists(f"already exists: {relpath}")
        return kind

    async def _record(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        result: PutResult,
        hashers: Sequence[Any],
        content_type: str | None,
        tags: Mapping[str, str] | None,
    ) -> None:
        """What the proxy knows of the object it just stored, trusted while its ETag is the same."""
        record: dict[str, Any] = {
            "etag": result.etag,
            "sha256": hashers[0].hexdigest() if hashers else None,
            "md5": hashers[1].hexdigest() if hashers else None,
            "content_type": content_type,
            "tags": dict(tags or {}),
        }
        await self.deps.books.put_file_meta(self.name, str(vfid), str(relpath), record)

    async def get_file_meta(self, vfid: VFolderID, relpath: RelPath) -> FileMeta:
        head = await self.conn.head(self.file_key(vfid, relpath)) if relpath.parts else None
        if head is None:
            await self._missing(vfid, relpath)
        record = await self.deps.books.get_file_meta(self.name, str(vfid), str(relpath))
        return file_meta(head, record)

    async def update_file_meta(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> FileMeta:
        meta = await self.get_file_meta(vfid, relpath)
        head = await self.conn.head(self.file_key(vfid, relpath))
        record = {
            "etag": head["ETag"] if head else None,
            "sha256": meta.sha256,
            "md5": meta.md5,
            "content_type": content_type if content_type is not None else meta.content_type,
            "tags": dict(tags) if tags is not None else meta.tags,
        }
        await self.deps.books.put_file_meta(self.name, str(vfid), str(relpath), record)
        return await self.get_file_meta(vfid, relpath)
