"""Resumable transfers over the client API: tus uploads and ranged downloads, verified by sha256.

Re-running an interrupted command resumes it: an upload remembers its tus URL in a small state
file (keyed by target and by the local file's size and mtime) and asks the server for the offset;
a download continues its ``.part`` file with a Range request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiofiles
import aiofiles.os
import aiohttp

TUS = {"Tus-Resumable": "1.0.0"}
DEFAULT_CHUNK = 8 << 20
MAX_CONFLICTS = 30  # 409s in a row (an earlier PATCH still finishing) before giving up
READ_CHUNK = 1 << 20

Progress = Callable[[int], None]


class TransferError(Exception):
    """A failed transfer, with a message meant for the person at the terminal."""


def default_state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "storage-proxy-client" / "uploads.json"


@dataclass
class Target:
    base_url: str
    volume: str
    vfid: str
    path: str

    @property
    def files_url(self) -> str:
        return f"{self.base_url}/api/v1/vfolders/{self.volume}/{self.vfid}/files/{self._quoted}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/api/v1/vfolders/{self.volume}/{self.vfid}/metadata/{self._quoted}"

    @property
    def _quoted(self) -> str:
        """The path as a URL path: a name with ``#``, ``?`` or ``%`` in it names that file."""
        return quote(self.path, safe="/")


async def problem(resp: aiohttp.ClientResponse) -> str:
    try:
        body = await resp.json(content_type=None)
        return f"{resp.status} {body.get('code', '')}: {body.get('detail', '')}"
    except (ValueError, aiohttp.ContentTypeError):
        return f"{resp.status} {resp.reason}"


def _sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class UploadState:
    """Local file + target → tus URL (or, for an upload in parallel parts, the parts and their
    URLs), so a re-run of the same upload resumes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def key(self, local: Path, target: Target) -> str:
        st = local.stat()
        return json.dumps(
            [str(local.resolve()), st.st_size, st.st_mtime_ns, target.files_url], sort_keys=True
        )

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def put(self, key: str, url: Any) -> None:
        data = self._load()
        if url is None:
            data.pop(key, None)
        else:
            data[key] = url
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)


async def upload(
    session: aiohttp.ClientSession,
    local: Path,
    target: Target,
    *,
    state: UploadState,
    chunk_size: int = DEFAULT_CHUNK,
    on_start: Callable[[int, int], None] = lambda offset, total: None,
    progress: Progress = lambda n: None,
) -> dict[str, Any]:
    """Upload (or resume) ``local`` to ``target``; return the server's file metadata."""
    size = (await asyncio.to_thread(local.stat)).st_size
    key = await asyncio.to_thread(state.key, local, target)
    saved = await asyncio.to_thread(state.get, key)
    url = saved if isinstance(saved, str) else None
    offset = await resume_offset(session, url) if url else None
    if url is None or offset is None:
        url = await create_upload(session, target, size)
        offset = 0
        await asyncio.to_thread(state.put, key, url)
    on_start(offset, size)
    await send_range(session, local, url, 0, offset, size, chunk_size, progress)
    await asyncio.to_thread(state.put, key, None)
    return await verify_remote(session, target, local)


async def send_range(
    session: aiohttp.ClientSession,
    local: Path,
    url: str,
    base: int,
    offset: int,
    length: int,
    chunk_size: int,
    progress: Progress,
) -> None:
    """PATCH bytes ``base + offset`` to ``base + length`` of ``local`` to the tus upload at
    ``url`` (whose own offsets start at 0), from the upload's ``offset`` on."""
    conflicts = 0
    async with aiofiles.open(local, "rb") as f:
        while offset < length:
            await f.seek(base + offset)
            chunk = await f.read(min(chunk_size, length - offset))
            if not chunk:
                raise TransferError(f"{local} shrank while it was being uploaded")
            digest = await asyncio.to_thread(_sha256_digest, chunk)  # parts hash at once
            headers = {
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset),
                "Upload-Checksum": "sha256 " + base64.b64encode(digest).decode(),
            }
            async with session.patch(url, data=chunk, headers=headers) as resp:
                if resp.status == 409 and conflicts < MAX_CONFLICTS:
                    # The server is still finishing an earlier, interrupted PATCH (or holds
                    # another offset): wait for it, then continue from what it has.
                    conflicts += 1
                    await asyncio.sleep(min(0.1 * conflicts, 2.0))
                    offset = await resume_offset(session, url) or 0
                    continue
                if resp.status != 204:
                    raise TransferError(
                        f"upload failed at byte {base + offset}: {await problem(resp)}"
                    )
                new_offset = int(resp.headers["Upload-Offset"])
            progress(new_offset - offset)
            offset = new_offset
            conflicts = 0


async def resume_offset(session: aiohttp.ClientSession, url: str) -> int | None:
    async with session.head(url, headers=TUS) as resp:
        if resp.status == 200:
            return int(resp.headers["Upload-Offset"])
        return None  # gone, expired or finished: start a new upload


def upload_metadata(target: Target) -> str:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    return f"volume {b64(target.volume)},vfid {b64(target.vfid)},path {b64(target.path)}"


async def create_upload(
    session: aiohttp.ClientSession, target: Target, size: int | None, **extra: str
) -> str:
    """A new tus upload for ``target`` (``extra``: more headers, e.g. Upload-Concat); its URL."""
    headers = {**TUS, "Upload-Metadata": upload_metadata(target), **extra}
    if size is not None:
        headers["Upload-Length"] = str(size)
    async with session.post(f"{target.base_url}/upload", headers=headers) as resp:
        if resp.status != 201:
            raise TransferError(f"cannot start the upload: {await problem(resp)}")
        location = resp.headers["Location"]
    return location if location.startswith("http") else f"{target.base_url}{location}"


async def verify_remote(
    session: aiohttp.ClientSession, target: Target, local: Path
) -> dict[str, Any]:
    async with session.get(target.metadata_url) as resp:
        if resp.status != 200:
            raise TransferError(f"cannot read the stored file's metadata: {await problem(resp)}")
        meta: dict[str, Any] = await resp.json()
    local_sha = await asyncio.to_thread(sha256_of, local)
    if meta.get("sha256") != local_sha:
        raise TransferError(
            f"checksum mismatch: local sha256 {local_sha}, stored {meta.get('sha256')}"
        )
    return meta


async def download(
    session: aiohttp.ClientSession,
    target: Target,
    local: Path,
    *,
    on_start: Callable[[int, int], None] = lambda offset, total: None,
    progress: Progress = lambda n: None,
    source: str | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """Download (or resume) into ``local`` via ``local.part``; verified before it is renamed.

    ``source``: another URL than the file's (a version or a snapshot's file), verified against
    ``sha256`` when one is given instead of the file's stored checksum."""
    part = local.with_name(local.name + ".part")
    offset = (
        (await asyncio.to_thread(part.stat)).st_size if await aiofiles.os.path.exists(part) else 0
    )
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with session.get(source or target.files_url, headers=headers) as resp:
        if resp.status == 416:  # the .part is already whole (or stale): start over
            await asyncio.to_thread(part.unlink, missing_ok=True)
            return await download(
                session,
                target,
                local,
                on_start=on_start,
                progress=progress,
                source=source,
                sha256=sha256,
            )
        if resp.status not in (200, 206):
            raise TransferError(f"download failed: {await problem(resp)}")
        if resp.status == 200:
            offset = 0
        total = offset + int(resp.headers.get("Content-Length", 0))
        on_start(offset, total)
        async with aiofiles.open(part, "ab" if offset else "wb") as f:
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                await f.write(chunk)
                progress(len(chunk))
    meta: dict[str, Any] = {"sha256": sha256}
    if source is None:
        async with session.get(target.metadata_url) as resp:
            meta = await resp.json() if resp.status == 200 else {}
    expected = meta.get("sha256")
    if expected:
        actual = await asyncio.to_thread(sha256_of, part)
        if actual != expected:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise TransferError(f"checksum mismatch: got {actual}, the server has {expected}")
    await asyncio.to_thread(part.replace, local)
    return meta


async def list_files(
    session: aiohttp.ClientSession, base_url: str, volume: str, vfid: str, prefix: str
) -> list[dict[str, Any]]:
    url = f"{base_url}/api/v1/vfolders/{volume}/{vfid}/files"
    files: list[dict[str, Any]] = []
    marker = ""
    while True:
        params = {"prefix": prefix, "marker": marker, "limit": "1000"}
        async with session.get(url, params=params) as resp:
            if resp.status != 200:
                raise TransferError(f"listing failed: {await problem(resp)}")
            page = await resp.json()
        files.extend(page["files"])
        if not page["truncated"]:
            return files
        marker = page["next_marker"]


def vfolder_url(base_url: str, volume: str, vfid: str) -> str:
    return f"{base_url}/api/v1/vfolders/{volume}/{vfid}"


async def call_json(
    session: aiohttp.ClientSession, method: str, url: str, what: str, **kw: Any
) -> Any:
    """One JSON answer (None for 204), or a TransferError naming ``what`` failed and why."""
    async with session.request(method, url, **kw) as resp:
        if resp.status >= 300:
            raise TransferError(f"{what} failed: {await problem(resp)}")
        return None if resp.status == 204 else await resp.json()
