"""What a door hands a file operation and gets back: read and write options, an opened local
file (the descriptor a download is sent from), a read's raw socket (what a relay splices).
Shared by every layer, so they live here."""

from __future__ import annotations

import os
import socket
import stat as stat_mod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from .paths import RelPath


class LocalFile:
    """An opened regular file or directory of a volume with local files.

    What was resolved is what gets used: the caller reads (or ``sendfile``s, or walks) the
    descriptor, never the path again, and closes it (``with local:``).
    """

    __slots__ = ("fd", "stat", "body")

    def __init__(self, fd: int, stat: os.stat_result, body: bytes | None = None) -> None:
        self.fd = fd
        self.stat = stat
        self.body = body  # the whole content, when small enough and asked for

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.stat.st_mode)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawBody:
    """A read's bytes as they arrive on a connected socket (an object store's response with its
    headers already read), for a relay that moves them between sockets without copying them
    into the daemon.  ``head``: body bytes that came in with the headers; ``length``: the
    bytes in all, ``head`` included.  Whoever holds it closes it."""

    __slots__ = ("sock", "head", "length")

    def __init__(self, sock: socket.socket, head: bytes, length: int) -> None:
        self.sock = sock
        self.head = head
        self.length = length

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A file's tags and content type, as JSON (``{"content_type": …, "tags": {…}}``, no spaces),
#: at most this many bytes: they are kept in one extended attribute with the checksums, and a
#: filesystem holds only a few kB of those per file (ext4: one block, shared with all others).
MAX_FILE_META_BYTES = 3 << 10


@dataclass(frozen=True, slots=True)
class ReadOptions:
    offset: int = 0
    length: int | None = None  # None: to the end
    chunk_size: int = 1 << 20


@dataclass(frozen=True, slots=True)
class KeepVersions:
    """Keep what an operation replaces or deletes as a version of the file (a vfolder's
    ``versions = N``): at most ``limit`` per file, the oldest dropped first."""

    limit: int
    who: str | None = None  # whose operation made the version (the audit principal)


@dataclass(frozen=True, slots=True)
class WriteOptions:
    size_hint: int | None = None  # declared size: refused up front if it does not fit the quota
    overwrite: bool = True
    mode: int = 0o644
    checksums: bool = False  # compute sha256 and md5 while streaming; store them with the file
    content_type: str | None = None
    tags: Mapping[str, str] | None = None
    keep: KeepVersions | None = None  # keep the file it replaces as a version


@dataclass(frozen=True, slots=True)
class WholeFile:
    """A small file whose body has arrived whole, to be stored as :meth:`write` would store it
    (one of a group a volume may store in fewer round trips)."""

    relpath: RelPath
    body: bytes
    options: WriteOptions = WriteOptions()
