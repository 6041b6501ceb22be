"""Helpers for the bgtask and job tests: vfolders through the manager API, waiting on tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from api_fixtures import Daemon

from helpers import new_vfid
from storage_proxy.core.types import VFolderID


async def make_vfolder(daemon: Daemon, files: dict[str, bytes] | None = None) -> VFolderID:
    vfid = new_vfid()
    status, body = await daemon.call("POST", "/folder/create", volume="vol1", vfid=str(vfid))
    assert status == 204, body
    root = folder_path(daemon, vfid)
    for rel, data in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return vfid


def folder_path(daemon: Daemon, vfid: VFolderID) -> Path:
    volume = daemon.ctx.volumes.get("vol1")
    return volume.vfolder_path(vfid)  # type: ignore[attr-defined, no-any-return]


async def wait_done(daemon: Daemon, task_id: str, within: float = 10) -> dict[str, Any]:
    """Poll ``GET /bgtask/{id}`` until the task has ended; the last answer."""
    async with asyncio.timeout(within):
        while True:
            status, body = await daemon.call("GET", f"/bgtask/{task_id}")
            assert status == 200, body
            if body["status"] not in ("pending", "running"):
                return body  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)


async def run_job(daemon: Daemon, name: str) -> dict[str, Any]:
    status, body = await daemon.call("POST", f"/jobs/{name}")
    assert status == 202, body
    done = await wait_done(daemon, body["bgtask_id"])
    assert done["status"] == "done", done
    return done["result"]  # type: ignore[no-any-return]
