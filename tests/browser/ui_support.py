"""Driving the web UI in a real browser: Debian's chromium through Playwright (async API).

Playwright's own browser download cannot work here, so the system's ``/usr/bin/chromium`` is
launched, with the flags that keep it from calling out to the network.  Screenshots of every
page a test visits are kept under ``tests/artifacts/ui/`` (ignored by git) for a person to look
at.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from e2e_support import Daemon
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("STORAGE_PROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
VOLUME = "local"
ALICE_VFID = "user:00000000-0000-0000-0000-00000000a11c/0123456789abcdef0123456789abcdef"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def volumes(tmp: Path) -> dict[str, dict[str, Any]]:
    return {VOLUME: {"backend": "vfs", "path": tmp / "vol", "options": {"quota-usage-ttl": 0}}}


def make_vfolder(daemon: Daemon, vfid: str, owner: str, kind: str = "user") -> None:
    resp = daemon.manager(
        "POST", "/folder/create", {"volume": VOLUME, "vfid": vfid, "owner": owner, "kind": kind}
    )
    assert resp.status == 204, resp.body


def grant(daemon: Daemon, vfid: str, principal: str, permission: str) -> None:
    body = {"volume": VOLUME, "vfid": vfid, "principal": principal, "permission": permission}
    resp = daemon.manager("POST", "/folder/acl/grant", body)
    assert resp.status == 200, resp.body


def mint(daemon: Daemon, user: str, groups: list[str] | None = None) -> dict[str, str]:
    resp = daemon.manager("POST", "/token", {"user": user, "groups": groups or []})
    assert resp.status == 200, resp.body
    body: dict[str, str] = resp.json()
    return body


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def open_vfolder(page: Page, vfid: str = ALICE_VFID) -> None:
    await page.get_by_role("link", name=vfid).click()
    await page.wait_for_selector("table.files tbody tr")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_file(path: Path, size: int) -> str:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(0, size, len(block)):
            f.write(block[: min(len(block), size - i)])
            block = hashlib.sha256(block).digest() * (len(block) // 32)
    return sha256_of(path)


async def row(page: Page, name: str) -> Any:
    return page.locator(f'table.files tr[data-name="{name}"]')


def put_file(daemon: Daemon, token: str, path: str, data: bytes, vfid: str = ALICE_VFID) -> None:
    """Store ``data`` at ``path`` through the file API (a PUT of the raw bytes)."""
    url = f"{daemon.client_url}/api/v1/vfolders/{VOLUME}/{vfid}/files/{path}"
    req = urllib.request.Request(
        url, data=data, method="PUT", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
