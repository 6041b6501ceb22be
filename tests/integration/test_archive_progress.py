"""A big archive download with ``progress=true`` is sent by a background task: its id comes in the
answer's headers, its progress (files and bytes in the zip so far) streams on the manager API's
``/bgtask/{id}/events``, cancelling it cuts the download, and a client that leaves fails it."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest
from api_fixtures import Daemon
from client_cli import VFID, alice_folder
from test_batch_progress import events

FILES = 200
SIZE = 64 << 10  # 12.5 MiB in all: more than the socket buffers hold


async def token(daemon: Daemon) -> str:
    vf = await alice_folder(daemon)
    (vf / "set").mkdir()
    for i in range(FILES):
        (vf / "set" / f"f{i:04d}.bin").write_bytes(bytes([i % 256]) * SIZE)
    status, body = await daemon.call(
        "POST",
        "/folder/file/archive-download-token",
        volume="vol1",
        virtual_folder_id=VFID,
        files=["set"],
    )
    assert status == 200, body
    return str(body["token"])


async def test_archive_progress_events(daemon: Daemon) -> None:
    params = {"token": await token(daemon), "progress": "true"}
    resp = await daemon.client.get("/download-archive", params=params)
    assert resp.status == 200 and resp.content_type == "application/zip"
    task_id = resp.headers["X-BgTask-Id"]
    seen: list[tuple[str, float, str]] = []

    async def follow() -> None:
        async for name, state in events(daemon, task_id):
            if name == "server_close":
                return
            seen.append((name, state["current_progress"], state["message"]))

    follower = asyncio.create_task(follow())
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 << 10):
        body += chunk
        await asyncio.sleep(0.005)  # a slow reader: the task reports while it sends
    await asyncio.wait_for(follower, 10)
    archive = zipfile.ZipFile(io.BytesIO(bytes(body)))
    assert archive.testzip() is None and len(archive.namelist()) == FILES + 1  # and set/
    assert seen[-1][0] == "bgtask_done" and seen[-1][1] == FILES
    assert f"{FILES} files, {FILES * SIZE} bytes sent" == seen[-1][2]
    assert [s for s in seen if s[0] == "bgtask_updated" and 0 < s[1] < FILES], seen
    status, task = await daemon.call("GET", f"/bgtask/{task_id}")
    assert task["kind"] == "archive-download" and task["status"] == "done"
    assert task["result"] == {"files": FILES, "bytes": FILES * SIZE}


async def test_cancelling_the_task_cuts_the_download(daemon: Daemon) -> None:
    params = {"token": await token(daemon), "progress": "1"}
    resp = await daemon.client.get("/download-archive", params=params)
    task_id = resp.headers["X-BgTask-Id"]
    await resp.content.read(16 << 10)  # the client then stops reading: the task waits on it
    status, task = await daemon.call("DELETE", f"/bgtask/{task_id}")
    assert status == 200 and task["status"] == "cancelled", task
    with pytest.raises(Exception):  # noqa: B017 - a cut connection, however the client words it
        body = await asyncio.wait_for(resp.read(), 10)
        zipfile.ZipFile(io.BytesIO(body)).testzip()
    status, task = await daemon.call("GET", f"/bgtask/{task_id}")
    assert task["status"] == "cancelled"


async def test_a_client_that_leaves_fails_the_task(daemon: Daemon) -> None:
    params = {"token": await token(daemon), "progress": "yes"}
    resp = await daemon.client.get("/download-archive", params=params)
    task_id = resp.headers["X-BgTask-Id"]
    await resp.content.read(16 << 10)
    resp.close()  # hangs up mid-archive
    for _ in range(100):
        status, task = await daemon.call("GET", f"/bgtask/{task_id}")
        if task["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert task["status"] == "failed", task
    assert "client went away" in task["error"]["detail"] or task["error"]["code"] == "client-gone"
