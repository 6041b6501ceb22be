"""The abstract volume interface every backend implements.

Modelled on the small cores of fsspec and arrow-rs ``object_store``: a handful of required
operations; anything derivable (``used_bytes`` from ``usage``, ``rename`` from ``move``) is derived
here once and not overridden.  A volume is composed of a :class:`QuotaModel` (whose space, how much)
and its file operations, so a backend with native quotas swaps only the quota model.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, Self, TypeVar

import trafaret as t

from ..core.errors import (
    NotSupported,
    StorageProxyError,
    UnsupportedOperation,
    VFolderNotFound,
)
from ..core.files import (
    KeepVersions,
    LocalFile,
    RawBody,
    ReadOptions,
    WholeFile,
    WriteOptions,
)
from ..core.paths import RelPath
from ..core.snapshots import FileVersion, Progress, RestoreOptions, RestoreReport, SnapshotInfo
from ..core.types import (
    Capability,
    DirEntry,
    FileMeta,
    FSUsage,
    QuotaConfig,
    QuotaScopeID,
    QuotaUsage,
    VFolderID,
    VFolderUsage,
)
from . import listing, upkeep
from .upkeep import Expired, StoredFile, StoredLayout, TrashReport

if TYPE_CHECKING:
    from ..core.records import QuotaBucket
    from .blockstats import PerfMetric
    from .books import VolumeBooks
    from .scan import TreeScanner
    from .snapshots import SnapshotTree

DEFAULT_VFOLDER_MODE = 0o755
P = ParamSpec("P")
R = TypeVar("R")
SCANDIR_DEFAULT = -1  # "use the configured scandir-limit"


@dataclass(frozen=True, slots=True)
class VolumeDeps:
    """What the daemon hands every backend (passed in; backends keep no globals)."""

    #: Quota limits, the shared ledger and sidecar file metadata (``volumes.books``).
    books: VolumeBooks
    scanner: TreeScanner
    scandir_limit: int = 1000
    #: The bounded pool blocking file work runs on (None: asyncio's default executor).
    io: Executor | None = None
    #: Who holds this process's quota reservations in the shared ledger ("<node>/<pid>").
    holder: str = field(default_factory=lambda: f"local/{os.getpid()}")


@dataclass(slots=True)
class StagedFile:
    """A writer's hold on one staged upload (``upload_hold``): while it is held, no other writer
    (request, process or node) can change the staged bytes."""

    session_id: str


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where a staged upload will be published, known when it is prepared (a backend that sends
    the bytes on early, as the s3 one does, needs it before the upload completes)."""

    vfid: VFolderID
    relpath: RelPath
    content_type: str | None = None
    #: A partial upload (tus concatenation): never published itself, only joined into another.
    partial: bool = False
    #: Its sha256 and md5 are recorded when it is published (a backend may hash as it arrives).
    checksums: bool = False


@dataclass(frozen=True, slots=True)
class AppendOptions:
    """How one append to a staged upload behaves."""

    #: Drop what is staged first (a whole-body PUT); the offset must then be 0.
    replace: bool = False
    #: A stream that breaks off keeps what arrived (the client resumes); False: all or nothing.
    keep_partial: bool = True
    #: Called after the last byte, under the writer's lock; raising discards the whole chunk.
    verify: Callable[[], None] | None = None
    #: Fed every byte as it is written, off the event loop (``verify`` then checks a digest).
    hashers: Sequence[Any] = ()


class WriteReservation(ABC):
    """What one write holds against its vfolder's limits while it streams.

    An async context: ``reserve`` a declared size up front, ``consume`` each chunk before it is
    written; both raise ``QuotaExceeded`` when the write cannot fit.  Leaving the context calls
    :meth:`settle` (which holds nothing, by default).
    """

    def __init__(self, vfid: VFolderID) -> None:
        self._vfid = vfid
        self.reserved = 0
        self.used = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.settle(completed=exc_type is None)

    async def settle(self, *, completed: bool) -> None:
        """Give back what was held; ``completed``: the write finished and its bytes count."""

    @abstractmethod
    async def reserve(self, nbytes: int) -> None: ...

    @abstractmethod
    async def consume(self, nbytes: int) -> None: ...


class QuotaModel(ABC):
    """Quota scopes of one volume: create / describe / update / unset / delete, plus headroom."""

    @abstractmethod
    async def create_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig | None) -> None: ...

    @abstractmethod
    async def quota_scope_exists(self, qsid: QuotaScopeID) -> bool: ...

    @abstractmethod
    async def describe_quota_scope(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        """``None`` when the scope does not exist."""

    @abstractmethod
    async def update_quota_scope(self, qsid: QuotaScopeID, config: QuotaConfig) -> None: ...

    @abstractmethod
    async def unset_quota(self, qsid: QuotaScopeID) -> None: ...

    @abstractmethod
    async def delete_quota_scope(self, qsid: QuotaScopeID) -> None: ...

    @abstractmethod
    async def remaining_bytes(self, qsid: QuotaScopeID) -> int | None:
        """Bytes the proxy may still write into the scope; ``None`` when it need not count."""

    async def usage_after_write(self, qsid: QuotaScopeID) -> QuotaUsage | None:
        """The scope's usage as the quota alerts look at it after each write through the proxy
        (None: nothing to look at). By default what :meth:`describe_quota_scope` says."""
        return await self.describe_quota_scope(qsid)

    async def headroom(self, vfid: VFolderID) -> int | None:
        """Bytes that may still be written into the vfolder (scope and vfolder limits)."""
        return await self.remaining_bytes(vfid.quota_scope_id)

    async def buckets(self, vfid: VFolderID) -> list[QuotaBucket]:
        """The limits an upload into ``vfid`` is checked against in the shared ledger (none:
        the storage enforces its own)."""
        return []

    def reservation(self, vfid: VFolderID, *, counts_as_written: bool = True) -> WriteReservation:
        """What a write into the vfolder holds while it streams.  ``counts_as_written=False``:
        the bytes are accounted elsewhere once written (an upload session's staged offset)."""
        return _NoReservation(vfid)

    async def record_written(self, vfid: VFolderID, nbytes: int) -> None:
        """Tell the model that the proxy itself added ``nbytes`` to the vfolder (a publish)."""

    def invalidate(self, vfid: VFolderID) -> None:
        """Forget any cached usage of the vfolder and its scope (files removed or replaced)."""


class _NoReservation(WriteReservation):
    """For storage whose own limits are all there is: nothing to hold."""

    async def reserve(self, nbytes: int) -> None:
        pass

    async def consume(self, nbytes: int) -> None:
        self.used += nbytes


class AbstractVolume(ABC):
    """One configured volume. Subclasses are registered under ``storage_proxy.volume_backends``."""

    #: The name used in ``[volume.NAME].backend``; set by every concrete backend.
    backend_name: ClassVar[str] = ""
    #: Capabilities every instance of the backend has (``get_capabilities`` may narrow them).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Trafaret for ``[volume.NAME].options``; unknown keys are errors unless a backend allows them.
    options_schema: ClassVar[t.Trafaret] = t.Dict({}).allow_extra("*")

    quota_model: QuotaModel

    def __init__(
        self,
        name: str,
        mount_path: Path,
        *,
        fsprefix: str = ".",
        options: Mapping[str, Any] | None = None,
        deps: VolumeDeps,
    ) -> None:
        self.name = name
        self.mount_path = Path(mount_path)
        self.fsprefix = fsprefix
        self.options: dict[str, Any] = self.options_schema.check(dict(options or {}))
        self.deps = deps

    async def run_blocking(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Blocking file work on the daemon's bounded file-I/O pool (``io-threads``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.deps.io, partial(func, *args, **kwargs))

    # -- lifecycle ---------------------------------------------------------------------------
    async def init(self) -> None:
        """Check the volume is usable; raise with a message an operator can act on if not."""

    async def shutdown(self) -> None:
        """Release what ``init`` acquired."""

    async def get_capabilities(self) -> frozenset[Capability]:
        return self.capabilities

    # -- vfolders ----------------------------------------------------------------------------
    @abstractmethod
    async def create_vfolder(
        self, vfid: VFolderID, *, mode: int = DEFAULT_VFOLDER_MODE
    ) -> None: ...

    @abstractmethod
    async def delete_vfolder(self, vfid: VFolderID) -> None: ...

    @abstractmethod
    async def clone_vfolder(self, src: VFolderID, dst: VFolderID) -> None: ...

    async def clone_progress(self, dst: VFolderID) -> int | None:
        """Bytes a running clone into ``dst`` has copied so far; None if the volume cannot
        tell (progress then jumps from 0 to done)."""
        return None

    @abstractmethod
    async def vfolder_exists(self, vfid: VFolderID) -> bool: ...

    @abstractmethod
    async def get_vfolder_mount(self, vfid: VFolderID, subpath: RelPath = RelPath(())) -> Path:
        """The host path a container mounts; must stay inside the vfolder."""

    async def check_path(self, vfid: VFolderID, relpath: RelPath) -> None:
        """VFolderNotFound, or InvalidPath if what exists of ``relpath`` leads out of the vfolder
        (a write there would be refused); missing directories are fine (writes create them)."""
        if not await self.vfolder_exists(vfid):
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")

    @abstractmethod
    async def get_usage(self, vfid: VFolderID) -> VFolderUsage: ...

    async def get_used_bytes(self, vfid: VFolderID) -> int:
        return (await self.get_usage(vfid)).used_bytes

    @abstractmethod
    async def get_fs_usage(self) -> FSUsage: ...

    async def set_vfolder_quota(self, vfid: VFolderID, limit_bytes: int | None) -> None:
        """Apply a per-vfolder limit natively where the storage nests quotas (CephFS, qtrees).

        The limit is also kept in the metadata store, which is all a proxy-enforced model needs,
        so the default does nothing.
        """

    # -- files -------------------------------------------------------------------------------
    @abstractmethod
    def scandir(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        recursive: bool = False,
        limit: int | None = SCANDIR_DEFAULT,
    ) -> AsyncIterator[DirEntry]:
        """Entries below ``relpath``; at most ``limit`` (default: ``scandir-limit``, None: all)."""

    @abstractmethod
    async def stat(self, vfid: VFolderID, relpath: RelPath) -> DirEntry: ...

    async def list_files(
        self, vfid: VFolderID, *, prefix: str = "", start_after: str = "", limit: int
    ) -> list[DirEntry]:
        """Up to ``limit`` files below the vfolder whose paths start with ``prefix``, after
        ``start_after``, in key order — a page costs the page, not the tree (``listing``)."""
        return await listing.files_after(
            self, vfid, prefix=prefix, start_after=start_after, limit=limit
        )

    @abstractmethod
    async def mkdir(
        self, vfid: VFolderID, relpath: RelPath, *, parents: bool = True, exist_ok: bool = False
    ) -> None: ...

    @abstractmethod
    async def move_file(
        self, vfid: VFolderID, src: RelPath, dst: RelPath, *, keep: KeepVersions | None = None
    ) -> None:
        """Move ``src`` to ``dst``; a file moved over keeps the one it replaces with ``keep``
        (where the volume keeps versions)."""

    async def rename_file(self, vfid: VFolderID, relpath: RelPath, new_name: str) -> None:
        await self.move_file(vfid, relpath, relpath.with_name(new_name))

    @abstractmethod
    async def delete_files(
        self,
        vfid: VFolderID,
        relpaths: Sequence[RelPath],
        *,
        recursive: bool = False,
        keep: KeepVersions | None = None,
    ) -> None:
        """Delete files (and, ``recursive``, directories); with ``keep`` each deleted file is
        kept as a version (where the volume keeps versions)."""

    # -- data --------------------------------------------------------------------------------
    @abstractmethod
    def read(
        self, vfid: VFolderID, relpath: RelPath, options: ReadOptions = ReadOptions()
    ) -> AsyncIterator[bytes]: ...

    async def open_raw_read(
        self, vfid: VFolderID, relpath: RelPath, offset: int, length: int
    ) -> RawBody | None:
        """``length`` bytes of the file from ``offset`` on a socket, for a relay that splices
        them to the client (an object store reached over plain HTTP); None where the backend
        cannot, or this read cannot be done so (then :meth:`read` streams it).  Only a file the
        caller has just described is asked for: anything unexpected is None, not an error."""
        return None

    @abstractmethod
    async def write(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        stream: AsyncIterator[bytes],
        options: WriteOptions = WriteOptions(),
    ) -> FileMeta:
        """Store the stream at ``relpath`` atomically; return what was stored."""

    async def write_whole(
        self, vfid: VFolderID, files: Sequence[WholeFile]
    ) -> list[FileMeta | StorageProxyError]:
        """Store small files whose bodies have arrived whole, each as :meth:`write` stores it;
        each one's outcome, in order (a refusal of one is its outcome, not the group's).  Files
        with the same path land in order.  By default one :meth:`write` each; a backend that
        can store a group in fewer round trips (one quota hold, one blocking call) does so."""
        outcomes: list[FileMeta | StorageProxyError] = []
        for f in files:
            try:
                outcomes.append(await self.write(vfid, f.relpath, _once(f.body), f.options))
            except StorageProxyError as e:
                outcomes.append(e)
        return outcomes

    @abstractmethod
    async def get_file_meta(self, vfid: VFolderID, relpath: RelPath) -> FileMeta: ...

    @abstractmethod
    async def update_file_meta(
        self,
        vfid: VFolderID,
        relpath: RelPath,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> FileMeta:
        """Change the content type and/or replace the user tags (checksums stay as they are)."""

    async def local_file(
        self, vfid: VFolderID, relpath: RelPath, *, read_up_to: int = 0
    ) -> LocalFile | None:
        """A regular file or directory opened for reading, with its stat and — for a regular file
        of at most ``read_up_to`` bytes — its bytes (small downloads skip sendfile's setup).
        The caller closes it.  ``None`` when the backend has no local files."""
        return None

    # -- resumable uploads: bytes staged per session id, published atomically when complete --
    @abstractmethod
    async def upload_prepare(self, session_id: str, target: UploadTarget) -> None:
        """Create an empty staging area for the session, which will be published at ``target``."""

    @abstractmethod
    async def upload_size(self, session_id: str) -> int:
        """Bytes staged so far; the source of truth for a resumed upload's offset."""

    @abstractmethod
    def upload_hold(self, session_id: str) -> AbstractAsyncContextManager[StagedFile]:
        """Hold the staged upload as its only writer for a block; ``Conflict`` if another writer
        (request, worker process or node) holds it, ``UploadNotFound`` if nothing is staged."""

    @abstractmethod
    async def upload_append(
        self,
        held: StagedFile,
        offset: int,
        stream: AsyncIterator[bytes],
        options: AppendOptions = AppendOptions(),
    ) -> int:
        """Append ``stream`` to a held upload at ``offset``; return the new size.

        ``offset`` must be the staged size: otherwise ``UploadOffsetMismatch`` carrying the staged
        size, before anything is read.  A refused stream (a ``StorageProxyError``) leaves the
        staged bytes as they were; a broken one keeps what arrived if ``options.keep_partial``.
        """

    @abstractmethod
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
        """Move the complete staged file of a held upload to ``relpath`` in one atomic step.

        With ``checksums`` the staged bytes are hashed first and the result stored with the file;
        with ``keep`` the file it replaces is kept as a version.
        """

    async def upload_concat(self, held: StagedFile, parts: Sequence[StagedFile]) -> int:
        """Append the complete staged bytes of the held ``parts`` to the held upload, in order,
        without copying them where the storage allows (tus concatenation); the new size.  The
        parts stay held until the joined upload is published (its digests may be read from
        them)."""
        raise NotSupported("joining uploads (tus concatenation)", self.backend_name)

    @abstractmethod
    async def upload_discard(self, session_id: str) -> None:
        """Remove the staged bytes (termination, expiry); a missing session is not an error."""

    # -- maintenance: the periodic jobs call these on every backend (``upkeep``) ----------------
    async def purge_trash(self, older_than: float) -> TrashReport:
        """Remove for good what deleted vfolders left in the trash before ``older_than``."""
        return TrashReport()

    async def staged_uploads(self, older_than: float) -> list[str]:
        """Session ids of staged uploads last written before ``older_than`` (the trash job
        drops those no session refers to)."""
        return []

    async def reap_staging(self, older_than: float) -> list[str]:
        """Remove staged writes a crashed writer left (none holds them); what was removed."""
        return []

    def walk_files(self, vfid: VFolderID) -> AsyncIterator[StoredFile]:
        """Every regular file of the vfolder (files being written excluded)."""
        return upkeep.walk_files(self, vfid)

    async def file_digest(self, vfid: VFolderID, relpath: RelPath) -> tuple[str, int]:
        """The file's sha256 (hex) and size, from its bytes."""
        return await upkeep.file_digest(self, vfid, relpath)

    async def expire_files(self, vfid: VFolderID, older_than: float, dry_run: bool) -> Expired:
        """Remove the files last modified before ``older_than`` — each only if it is still the
        file that was looked at — or, with ``dry_run``, only name them."""
        return await upkeep.expire_files(self, vfid, older_than, dry_run)

    async def performance_metric(self) -> PerfMetric:
        """The volume's live I/O figures (Backend.AI's ``FSPerfMetric``), where the backend can
        read them; as Backend.AI answers a backend that cannot, UnsupportedOperation (400)."""
        raise UnsupportedOperation(
            f"the {self.backend_name!r} backend reports no performance metrics"
        )

    async def stored_vfolders(self) -> StoredLayout | None:
        """The vfolders the storage holds, for the orphan scan (None: it cannot tell)."""
        return None

    # -- snapshots (Capability.SNAPSHOT; ``volumes.snapshots``) -------------------------------
    async def create_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        """Take a snapshot of the vfolder named ``snapshot_id`` (SnapshotExists if taken).
        Files being written appear as they were before or after the write, never in part."""
        raise NotSupported("snapshots", self.backend_name)

    async def list_snapshots(self, vfid: VFolderID) -> list[SnapshotInfo]:
        """The vfolder's snapshots, oldest first (none where the backend takes none)."""
        if not await self.vfolder_exists(vfid):
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")
        return []

    async def delete_snapshot(
        self, vfid: VFolderID, snapshot_id: str, progress: Progress | None = None
    ) -> None:
        raise NotSupported("snapshots", self.backend_name)

    async def snapshot_tree(self, vfid: VFolderID, snapshot_id: str) -> SnapshotTree:
        """The snapshot's files, read-only (browsing and downloads)."""
        raise NotSupported("snapshots", self.backend_name)

    async def restore_snapshot(
        self,
        vfid: VFolderID,
        snapshot_id: str,
        options: RestoreOptions,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Bring back the whole vfolder or ``options.relpaths``, into place or into a new
        directory; derived from :meth:`snapshot_tree` and :meth:`write` unless overridden."""
        from .snapshots import restore_by_copy

        return await restore_by_copy(self, vfid, snapshot_id, options, progress)

    # -- versions of files (Capability.FILE_VERSIONS; ``keep`` on writes, moves, deletes) ----
    async def list_versions(self, vfid: VFolderID, relpath: RelPath) -> list[FileVersion]:
        """The file's kept versions, newest first (none where the backend keeps none)."""
        if not await self.vfolder_exists(vfid):
            raise VFolderNotFound(f"no vfolder {vfid} on volume {self.name!r}")
        return []

    async def open_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, *, read_up_to: int = 0
    ) -> tuple[FileVersion, LocalFile | None]:
        """The version and, on volumes with local files, its bytes opened for reading (the
        caller closes it); otherwise :meth:`read_version` streams them."""
        raise NotSupported("file versions", self.backend_name)

    def read_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, options: ReadOptions
    ) -> AsyncIterator[bytes]:
        raise NotSupported("file versions", self.backend_name)

    async def restore_version(
        self, vfid: VFolderID, relpath: RelPath, version_id: str, keep: KeepVersions
    ) -> FileMeta:
        """Make the version the current file again; the current one becomes a version."""
        raise NotSupported("file versions", self.backend_name)

    async def delete_version(self, vfid: VFolderID, relpath: RelPath, version_id: str) -> None:
        raise NotSupported("file versions", self.backend_name)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
