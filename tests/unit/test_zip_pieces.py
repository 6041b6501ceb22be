"""A zip of many small files is written in few large pieces (not three writes per file), the
small files read whole with their directory entries, and the archive is still exact: a file
above the inline limit is streamed from its descriptor, every byte and CRC as on disk."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path
from typing import Any

from storage_proxy.services import archive
from storage_proxy.services.archive import LocalTree, stream_zip


async def _run(func: Any, *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


async def test_many_small_files_few_pieces(tmp_path: Path) -> None:
    files = {f"d{i % 4}/f{i:04d}.bin": os.urandom(100 + i) for i in range(600)}
    files["big.bin"] = os.urandom(archive.INLINE_READ + 1)  # streamed from its descriptor
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    pieces = [piece async for piece in stream_zip(LocalTree(fd, _run))]
    total = sum(len(p) for p in pieces)
    assert len(pieces) <= total // archive.COALESCE + 4  # not ~3 per file
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as z:
        got = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
        assert z.testzip() is None  # every CRC matches
    assert got == files
