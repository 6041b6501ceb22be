"""A tar stream read as it arrives: one member at a time, its content a stream of chunks.

Only what a batch upload needs: regular files and directories are handed on; every other kind
of member (symbolic and hard links, devices, FIFOs) is reported as such, its data skipped, and
never created. Names come from the ustar header, a GNU long name or a pax ``path`` record; they
are returned as text (undecodable bytes kept by ``surrogateescape``) for the caller to parse as
any path from a request, so ``..`` or an absolute name is refused like everywhere else.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ..core.errors import InvalidParameter

BLOCK = 512
#: The largest extended header (pax records, GNU long name) read into memory.
MAX_EXTENDED_HEADER = 1 << 20
_FILE_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_KIND = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}

#: Reads exactly ``n`` bytes, or fewer only at the end of the stream.
ReadExactly = Callable[[int], Awaitable[bytes]]


@dataclass(slots=True)
class TarMember:
    name: str
    kind: str  # "file", "directory", or what else it is ("symbolic link", ...)
    size: int


class TarStream:
    """``async for member in stream``; read a file member's data with :meth:`data` before
    asking for the next one (whatever is left unread is skipped)."""

    def __init__(self, read_exactly: ReadExactly, chunk_size: int = 1 << 20) -> None:
        self._read = read_exactly
        self._chunk = chunk_size
        self._left = 0  # data bytes of the current member not read yet
        self._pad = 0  # padding after them

    async def _exactly(self, n: int) -> bytes:
        data = await self._read(n)
        if len(data) != n:
            raise InvalidParameter("the tar stream ends in the middle of a member")
        return data

    async def _skip_rest(self) -> None:
        while self._left:
            step = min(self._left, self._chunk)
            await self._exactly(step)
            self._left -= step
        if self._pad:
            await self._exactly(self._pad)
            self._pad = 0

    async def _extended(self, size: int) -> bytes:
        if size > MAX_EXTENDED_HEADER:
            raise InvalidParameter("a tar extended header is too large")
        data = await self._exactly(size)
        pad = -size % BLOCK
        if pad:
            await self._exactly(pad)
        return data

    def __aiter__(self) -> AsyncIterator[TarMember]:
        return self._members()

    async def _members(self) -> AsyncIterator[TarMember]:
        long_name: str | None = None
        long_size: int | None = None
        while True:
            await self._skip_rest()
            block = await self._read(BLOCK)
            if not block or block == bytes(BLOCK):
                return  # end of archive (a zero block, or the stream just ends there)
            if len(block) != BLOCK:
                raise InvalidParameter("the tar stream ends in the middle of a header")
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as e:
                raise InvalidParameter(f"the tar stream has a bad header: {e}") from None
            if info.size < 0:
                raise InvalidParameter("a tar member has a negative size")
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE):
                data = await self._extended(info.size)
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = _gnu_name(data)
                else:
                    records = _pax(data)
                    long_name = records.get(b"path", long_name)
                    if b"size" in records:
                        long_size = _int(records[b"size"])
                continue
            if info.type in (tarfile.XGLTYPE, tarfile.GNUTYPE_LONGLINK):
                await self._extended(info.size)  # global pax records, a link's long target
                continue
            name, long_name = (long_name or info.name), None
            if long_size is not None:
                info.size, long_size = long_size, None
            size = info.size if info.type not in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0
            self._left, self._pad = size, -size % BLOCK
            if info.type in _FILE_TYPES:
                kind = "file"
            elif info.type == tarfile.DIRTYPE:
                kind = "directory"
            else:
                kind = _KIND.get(info.type, f"member of type {info.type!r}")
            yield TarMember(name, kind, size)

    async def data(self) -> AsyncIterator[bytes]:
        """The current member's content, in chunks."""
        while self._left:
            chunk = await self._exactly(min(self._left, self._chunk))
            self._left -= len(chunk)
            yield chunk


def _gnu_name(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameter("the tar stream has a malformed pax size") from None
    if value < 0:
        raise InvalidParameter("a tar member has a negative size")
    return value


def _pax(data: bytes) -> dict[bytes, str]:
    """Pax records (``"<len> key=value\\n"`` each), values as text."""
    found: dict[bytes, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidParameter("the tar stream has malformed pax records") from None
        if length <= 0 or space < 0 or pos + length > len(data):
            raise InvalidParameter("the tar stream has malformed pax records")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        found[key] = value.decode("utf-8", "surrogateescape")
        pos += length
    return found
