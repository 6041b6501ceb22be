"""A tenant swaps a directory and a symlink to the outside while every door is used on the path.

While :class:`harness.Swapper` exchanges ``d`` (a real directory in the vfolder) and ``s`` (a link
to a directory outside it) as fast as it can, clients read, list, zip, write, create, delete,
move, tag and upload ``d/…`` through the file API, the download door, the manager API and tus.
Whatever instant each request meets, it may only ever act inside the vfolder: no outside byte in
any answer, no outside name in any listing or zip, no change outside, and no 500.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from harness import OUTSIDE_ONLY, RACE_TALLY, RaceWorld, Swapper, Tenant, leaked

RACE_SECONDS = float(os.environ.get("HOSTILE_RACE_SECONDS", "6"))
CONCURRENCY = 12
#: Each race goes on past its time until it reached this many requests (within 4× its time),
#: and must reach them: the six races together raced at least 11,000 (ceph-fuse is slower).
MIN_REQUESTS = {"vfs": 2500, "cephfs": 500}
#: Swaps a race must see to count as one.
MIN_SWAPS = 100

Op = Callable[[aiohttp.ClientSession, Tenant, int], Awaitable[tuple[int, bytes]]]


class Findings:
    def __init__(self) -> None:
        self.status: Counter[int] = Counter()
        self.leaks: list[str] = []
        self.requests = 0

    def check(self, op: str, status: int, body: bytes) -> None:
        self.requests += 1
        self.status[status] += 1
        if status >= 500:
            self.leaks.append(f"{op}: {status} {body[:300]!r}")
        elif leaked(body) or OUTSIDE_ONLY.encode() in body:
            self.leaks.append(f"{op}: answered outside data ({status})")


async def _read(resp: aiohttp.ClientResponse) -> tuple[int, bytes]:
    return resp.status, await resp.read()


# -- the doors, each as one request ---------------------------------------------------------------
async def fileapi_get(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    async with s.get(f"{t.files_url}/files/d/secret.txt", headers=t.auth) as r:
        return await _read(r)


async def fileapi_range(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    headers = {**t.auth, "Range": "bytes=100-5000"}
    async with s.get(f"{t.files_url}/files/d/sub/deep.txt", headers=headers) as r:
        return await _read(r)


async def fileapi_zip(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    async with s.get(f"{t.files_url}/files/d", params={"archive": "true"}, headers=t.auth) as r:
        status, body = await _read(r)
    if status == 200:
        archive = zipfile.ZipFile(io.BytesIO(body))
        names = archive.namelist()
        contents = b"".join(archive.read(n) for n in names if not n.endswith("/"))
        body = ("\n".join(names)).encode() + contents  # names and bytes go through the oracle
    return status, body


async def fileapi_list(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    params = {"prefix": "d/", "limit": "100"}
    async with s.get(f"{t.files_url}/files", params=params, headers=t.auth) as r:
        return await _read(r)


async def fileapi_meta(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    async with s.get(f"{t.files_url}/metadata/d/secret.txt", headers=t.auth) as r:
        status, body = await _read(r)
    if status == 200 and b'"size": 65536' not in body and b'"size":65536' not in body:
        return 599, b"metadata of another file: " + body  # the outside secret has another size
    return status, body


async def fileapi_tag(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    body = {"tags": {"n": str(i)}}
    async with s.patch(f"{t.files_url}/metadata/d/secret.txt", json=body, headers=t.auth) as r:
        return await _read(r)


async def fileapi_put(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    async with s.put(f"{t.files_url}/files/d/new-{i}.txt", data=b"x" * 100, headers=t.auth) as r:
        return await _read(r)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


async def batch_upload(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    """A tar of small files under ``d`` (stored as one group, below one held root)."""
    body = _tar([(f"d/b-{i}.txt", b"b" * 64), (f"d/sub/bs-{i}", b"s")])
    headers = {**t.auth, "Content-Type": "application/x-tar"}
    async with s.post(f"{t.files_url}/batch", data=body, headers=headers) as r:
        return await _read(r)


async def fileapi_mkdir(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    body = {"path": f"d/dir-{i}/inner"}
    async with s.post(f"{t.files_url}/mkdir", json=body, headers=t.auth) as r:
        return await _read(r)


async def fileapi_delete(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    async with s.delete(f"{t.files_url}/files/d/victim-{i % 64}", headers=t.auth) as r:
        return await _read(r)


async def fileapi_move(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    body = {"src": "d/movable.txt", "dst": f"moved-{i}.txt"}
    async with s.post(f"{t.files_url}/move", json=body, headers=t.auth) as r:
        return await _read(r)


async def fileapi_move_in(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    body = {"src": f"moved-{i}.txt", "dst": f"d/moved-back-{i}.txt"}
    async with s.post(f"{t.files_url}/move", json=body, headers=t.auth) as r:
        return await _read(r)


def _manager(path: str, **extra: object) -> Op:
    async def call(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
        body = {"volume": t.volume, "vfid": t.vfid}
        body.update({k: (v.format(i=i) if isinstance(v, str) else v) for k, v in extra.items()})
        headers = {"X-BackendAI-Storage-Auth-Token": t.daemon.secret or ""}
        async with s.post(f"{t.daemon.manager_url}{path}", json=body, headers=headers) as r:
            return await _read(r)

    return call


async def download_door(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    status, body = await _manager("/folder/file/download", relpath="d/secret.txt")(s, t, i)
    if status != 200:
        return status, body
    import json

    token = json.loads(body)["token"]
    headers = {"Range": "bytes=0-999"} if i % 2 else {}
    async with s.get(
        f"{t.daemon.client_url}/download", params={"token": token}, headers=headers
    ) as r:
        return await _read(r)


async def tus_upload(s: aiohttp.ClientSession, t: Tenant, i: int) -> tuple[int, bytes]:
    import base64

    def b64(v: str) -> str:
        return base64.b64encode(v.encode()).decode()

    meta = f"volume {b64(t.volume)},vfid {b64(t.vfid)},path {b64(f'd/up-{i}.bin')}"
    headers = {**t.auth, "Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": meta}
    async with s.post(f"{t.daemon.client_url}/upload", headers=headers) as r:
        status, body = await _read(r)
        location = r.headers.get("Location")
    if status != 201 or location is None:
        return status, body
    headers = {
        **t.auth,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    async with s.patch(f"{t.daemon.client_url}{location}", data=b"u" * 10, headers=headers) as r:
        return await _read(r)


READS: dict[str, Op] = {
    "fileapi-get": fileapi_get,
    "fileapi-range": fileapi_range,
    "fileapi-zip": fileapi_zip,
    "fileapi-list": fileapi_list,
    "fileapi-meta": fileapi_meta,
    "manager-list": _manager("/folder/file/list", relpath="d"),
    "download-door": download_door,
}
WRITES: dict[str, Op] = {
    "fileapi-put": fileapi_put,
    "batch-upload": batch_upload,
    "fileapi-mkdir": fileapi_mkdir,
    "fileapi-delete": fileapi_delete,
    "fileapi-move-out": fileapi_move,
    "fileapi-move-in": fileapi_move_in,
    "fileapi-tag": fileapi_tag,
    "manager-mkdir": _manager("/folder/file/mkdir", relpath="d/mdir-{i}"),
    "manager-rename": _manager("/folder/file/rename", relpath="d/movable.txt", new_name="r-{i}"),
    "manager-delete": _manager("/folder/file/delete", relpaths=["d/victim-1"]),
    "manager-move": _manager(
        "/folder/file/move", src_relpath="d/sub/deep.txt", dst_relpath="deep-{i}.txt"
    ),
    "tus-upload": tus_upload,
}


async def race(
    tenant: Tenant,
    ops: dict[str, Op],
    seconds: float,
    prepare: Callable[[], None] | None = None,
    goal: int | None = None,
) -> Findings:
    """``prepare`` runs once the world is built, before the swapping starts; ``goal``: the
    requests to reach (default: this module's floor for the backend)."""
    goal = MIN_REQUESTS[tenant.backend] if goal is None else goal
    world = RaceWorld.build(tenant.mount, tenant.mount.parent / f"outside-{os.getpid()}")
    if prepare is not None:
        prepare()
    findings = Findings()
    swapper = Swapper(tenant.mount / "d", tenant.mount / "s")
    names = list(ops)
    counter = iter(range(10**9))
    deadline = time.monotonic() + seconds
    cap = time.monotonic() + 4 * seconds
    timeout = aiohttp.ClientTimeout(total=30)

    def going() -> bool:
        """Until the time is up and both floors are reached (the requests, and enough swaps
        for them to have raced: a busy CephFS MDS can slow the swapper), or the cap."""
        now = time.monotonic()
        short = findings.requests < goal or swapper.swaps <= MIN_SWAPS
        return now < deadline or (short and now < cap)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)

    async def worker(session: aiohttp.ClientSession) -> None:
        while going():
            i = next(counter)
            name = names[i % len(names)]
            try:
                status, body = await ops[name](session, tenant, i)
            except (aiohttp.ClientError, TimeoutError, zipfile.BadZipFile) as e:
                findings.leaks.append(f"{name}: {e!r}")  # a stalled or broken answer
                continue
            findings.check(name, status, body)

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        swapper.start()
        try:
            await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        finally:
            swapper.stop()
    world.settle()
    world.assert_outside_untouched()
    assert swapper.swaps > MIN_SWAPS, f"the swapper barely ran ({swapper.swaps} swaps)"
    return findings


def world_inside(mount: Path, path: Path) -> bool:
    real = os.path.realpath(path)
    return real.startswith(str(mount) + "/")


def _report(findings: Findings) -> str:
    return f"{findings.requests} requests, statuses {dict(findings.status)}: {findings.leaks[:10]}"


@pytest.mark.hostile
async def test_reads_through_every_door_never_leave_the_vfolder(
    tenant: Tenant, request: pytest.FixtureRequest
) -> None:
    findings = await race(tenant, READS, RACE_SECONDS)
    RACE_TALLY.append((request.node.name, findings.requests, len(findings.leaks)))
    assert not findings.leaks, _report(findings)
    assert findings.requests >= MIN_REQUESTS[tenant.backend], _report(findings)
    assert findings.status[200] + findings.status[206] > findings.requests // 10, _report(findings)


@pytest.mark.hostile
async def test_writes_through_every_door_never_leave_the_vfolder(
    tenant: Tenant, request: pytest.FixtureRequest
) -> None:
    findings = await race(tenant, WRITES, RACE_SECONDS)
    RACE_TALLY.append((request.node.name, findings.requests, len(findings.leaks)))
    assert not findings.leaks, _report(findings)
    assert findings.requests >= MIN_REQUESTS[tenant.backend], _report(findings)
    ok = sum(n for status, n in findings.status.items() if status < 300)
    assert ok > findings.requests // 10, _report(findings)
    # what was written landed inside (in the real directory, or one a request created meanwhile)
    for pattern in ("new-*", "b-*"):  # a PUT's, a batch's
        written = [p for p in tenant.mount.rglob(pattern) if p.is_file()]
        assert written and all(world_inside(tenant.mount, p) for p in written), pattern
