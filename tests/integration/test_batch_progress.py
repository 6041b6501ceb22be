"""A big batch upload with ``progress=true`` runs as a background task: its id comes in the
answer's headers before the body is sent, its progress (files done of those announced, bytes
stored) streams on the manager API's ``/bgtask/{id}/events``, and cancelling it ends the batch."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from api_fixtures import Daemon
from client_cli import VFID, alice_folder

from storage_proxy.client.transfer import vfolder_url

FILES = 400
SIZE = 4096
URL = vfolder_url("", "vol1", VFID) + "/batch"


def tar_of(count: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"set/f{i:04d}.bin")
            info.size = SIZE
            tar.addfile(info, io.BytesIO(bytes([i % 256]) * SIZE))
    return out.getvalue()


async def slowly(
    data: bytes, pieces: int, pause: float, hold: asyncio.Event
) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        await hold.wait()
        yield data[start : start + step]
        await asyncio.sleep(pause)


def headers(daemon: Daemon, user: str = "alice") -> dict[str, str]:
    t = daemon.ctx.tokens.issue_user(user, [], timedelta(minutes=5))
    return {"Authorization": f"Bearer {t}", "Content-Type": "application/x-tar"}


async def events(daemon: Daemon, task_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    resp = await daemon.manager.get(f"/bgtask/{task_id}/events")
    assert resp.status == 200
    name = ""
    async for line in resp.content:
        text = line.decode().strip()
        if text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            yield name, json.loads(text[6:])


async def test_batch_progress_events(daemon: Daemon) -> None:
    vf = await alice_folder(daemon)
    go = asyncio.Event()
    go.set()
    body = slowly(tar_of(FILES), 40, 0.05, go)
    post = daemon.client.post(
        URL, params={"progress": "true", "files": str(FILES)}, data=body, headers=headers(daemon)
    )
    resp = await asyncio.wait_for(post, 10)  # the headers come before the body is all sent
    assert resp.status == 200
    task_id = resp.headers["X-BgTask-Id"]
    seen: list[tuple[str, float, float | None, str]] = []
    async for name, state in events(daemon, task_id):
        if name == "server_close":
            break
        seen.append((name, state["current_progress"], state["total_progress"], state["message"]))
    assert seen[-1][0] == "bgtask_done" and seen[-1][1] == FILES == seen[-1][2]
    assert f"{FILES * SIZE} bytes stored" in seen[-1][3]
    partial = [s for s in seen if s[0] == "bgtask_updated" and 0 < s[1] < FILES]
    assert partial, seen  # progress was seen while the body was still coming
    assert all(s[2] == FILES for s in partial) and "files done" in partial[0][3]
    result = await resp.json()
    assert result["stored"] == FILES and result["failed"] == 0 and result["bgtask_id"] == task_id
    status, task = await daemon.call("GET", f"/bgtask/{task_id}")
    assert task["kind"] == "batch-upload" and task["status"] == "done"
    assert task["result"] == {"stored": FILES, "failed": 0, "bytes": FILES * SIZE, "aborted": None}
    assert len(list((vf / "set").iterdir())) == FILES


async def test_cancelling_the_task_ends_the_batch(daemon: Daemon) -> None:
    vf = await alice_folder(daemon)
    go = asyncio.Event()
    go.set()
    body = slowly(tar_of(FILES), 40, 0.05, go)
    post = daemon.client.post(URL, params={"progress": "1"}, data=body, headers=headers(daemon))
    resp = await asyncio.wait_for(post, 10)
    task_id = resp.headers["X-BgTask-Id"]
    await asyncio.sleep(0.5)
    status, task = await daemon.call("DELETE", f"/bgtask/{task_id}")
    assert status == 200 and task["status"] == "cancelled", task
    with pytest.raises(aiohttp.ClientError):  # the upload is cut, as any cut short is
        await resp.json()
    status, task = await daemon.call("GET", f"/bgtask/{task_id}")
    assert task["status"] == "cancelled" and 0 < task["current_progress"] < FILES, task
    kept = len(list((vf / "set").iterdir()))
    assert 0 < kept < FILES  # what was stored before the cancel is kept


async def test_refused_before_a_task_exists(daemon: Daemon) -> None:
    await alice_folder(daemon)
    resp = await daemon.client.post(
        URL, params={"progress": "true"}, data=tar_of(2), headers=headers(daemon, "mallory")
    )
    assert resp.status == 404 and "X-BgTask-Id" not in resp.headers
    resp = await daemon.client.post(
        URL, params={"progress": "true", "files": "many"}, data=tar_of(2), headers=headers(daemon)
    )
    assert resp.status == 400 and (await resp.json())["code"] == "invalid-parameter"
