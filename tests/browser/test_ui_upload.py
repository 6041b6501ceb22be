"""A 50 MiB upload through the web UI survives a dropped connection and a reload of the page,
then comes back byte for byte through the browser's own download."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from e2e_support import Daemon
from playwright.async_api import BrowserContext, Request, Route, expect
from ui_support import ALICE_VFID, make_file, mint, open_vfolder, sha256_of, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SIZE = 50 << 20
CHUNK = 8 << 20


class Network:
    """Watches the tus requests: drops one PATCH mid-upload, slows the others a little."""

    def __init__(self) -> None:
        self.patches: list[int] = []  # Upload-Offset of every PATCH sent
        self.heads = 0
        self.finished_patches = 0
        self.dropped = False
        self.third_done = asyncio.Event()

    async def route(self, route: Route, request: Request) -> None:
        if request.method == "HEAD":
            self.heads += 1
        if request.method != "PATCH":
            await route.continue_()
            return
        self.patches.append(int(request.headers["upload-offset"]))
        if len(self.patches) == 2 and not self.dropped:
            self.dropped = True  # the connection drops in the middle of the upload
            await route.abort("internetdisconnected")
            return
        await asyncio.sleep(0.3)
        await route.continue_()

    def on_finished(self, request: Request) -> None:
        if request.method == "PATCH" and "/upload/" in request.url:
            self.finished_patches += 1
            if self.finished_patches >= 3:
                self.third_done.set()


async def test_upload_survives_a_network_drop_and_a_reload(
    ui_daemon: Daemon, context: BrowserContext, tmp_path: Path
) -> None:
    local = tmp_path / "weights.bin"
    digest = make_file(local, SIZE)
    page = await context.new_page()
    net = Network()
    await page.route("**/upload/*", net.route)
    page.on("requestfinished", net.on_finished)

    await page.goto(mint(ui_daemon, "alice")["ui_url"])
    await open_vfolder(page)
    await page.set_input_files("#pick-files", str(local))
    upload = page.locator('li.upload[data-path="weights.bin"]')
    await expect(upload.locator(".upload-state")).to_contain_text("Connection lost", timeout=15_000)
    await asyncio.wait_for(net.third_done.wait(), 60)
    await shot(page, "upload-in-progress")
    sent_before_reload = max(net.patches)
    assert net.heads >= 1, "after the drop the client asks the server for its offset"

    await page.reload()  # the tab is reloaded mid-upload: the token stays, the upload is pending
    pending = page.get_by_role("region", name="Interrupted uploads")
    await expect(pending).to_contain_text("weights.bin")
    await shot(page, "upload-interrupted")
    resumed_from = len(net.patches)
    await page.set_input_files("#pick-files", str(local))
    upload = page.locator('li.upload[data-path="weights.bin"]')
    await expect(upload.locator(".upload-state")).to_have_text("Done", timeout=120_000)
    await shot(page, "upload-done")

    first_after_reload = net.patches[resumed_from]
    assert first_after_reload >= sent_before_reload > 0, net.patches
    assert first_after_reload % CHUNK == 0 or first_after_reload > 0
    # resumed, not restarted: no byte range was sent from 0 again after the reload
    assert all(offset > 0 for offset in net.patches[resumed_from:]), net.patches

    # the server's record of the file, and the browser's own download of it
    row = page.locator('table.files tr[data-name="weights.bin"]')
    await row.get_by_role("button", name="Details").click()
    await expect(page.locator("dl.meta")).to_contain_text(digest)
    await shot(page, "file-details")
    await page.get_by_role("button", name="Close").click()
    async with page.expect_download() as info:
        await row.get_by_role("button", name="Download", exact=True).click()
    download = await info.value
    saved = tmp_path / "downloaded.bin"
    await download.save_as(saved)
    assert saved.stat().st_size == SIZE
    assert sha256_of(saved) == digest
    mount = ui_daemon.manager("GET", f"/folder/mount?volume=local&vfid={ALICE_VFID}").json()
    assert sha256_of(Path(mount["path"]) / "weights.bin") == digest
