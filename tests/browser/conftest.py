"""The web UI in a real browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_support import Daemon, StartDaemon
from playwright.async_api import BrowserContext
from ui_support import ALICE_VFID, chromium, make_vfolder, volumes


@pytest.fixture
def ui_daemon(start_daemon_factory: StartDaemon, tmp_path: Path) -> Daemon:
    """A daemon with one vfs volume and alice's vfolder."""
    daemon = start_daemon_factory(volumes=volumes(tmp_path))
    make_vfolder(daemon, ALICE_VFID, "alice")
    return daemon


@pytest.fixture
async def context() -> AsyncIterator[BrowserContext]:
    async with chromium() as browser:
        viewport = {"width": 1280, "height": 900}
        ctx = await browser.new_context(accept_downloads=True, viewport=viewport)
        yield ctx
        await ctx.close()
