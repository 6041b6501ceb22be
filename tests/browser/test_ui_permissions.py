"""What a user sees follows its right: an RO user gets no write control at all, and the server
refuses the writes anyway; a user without any right does not see the vfolder."""

from __future__ import annotations

import base64

import pytest
from e2e_support import Daemon
from playwright.async_api import BrowserContext, expect
from ui_support import ALICE_VFID, VOLUME, grant, mint, open_vfolder, put_file, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
WRITE_CONTROLS = ["New folder", "Rename", "Move", "Delete", "Choose files", "Choose a folder"]


def seed(daemon: Daemon) -> None:
    token = mint(daemon, "alice")["token"]
    for path in ("docs/readme.txt", "data.csv"):
        put_file(daemon, token, path, b"x,y\n")


async def test_ro_user_sees_no_write_control(ui_daemon: Daemon, context: BrowserContext) -> None:
    seed(ui_daemon)
    grant(ui_daemon, ALICE_VFID, "user:bob", "ro")
    page = await context.new_page()
    await page.goto(mint(ui_daemon, "bob")["ui_url"])
    await expect(page.get_by_role("row").filter(has_text=ALICE_VFID)).to_contain_text("RO")
    await open_vfolder(page)
    await expect(page.locator('tr[data-name="data.csv"]')).to_be_visible()
    await shot(page, "browse-read-only")
    for label in WRITE_CONTROLS:
        await expect(page.get_by_text(label, exact=True)).to_have_count(0)
    assert await page.locator("input[type=file], #dropzone, button.write").count() == 0
    await expect(page.get_by_text("Read-only")).to_be_visible()
    # reading still works: details, links, downloads
    await page.locator('tr[data-name="data.csv"]').get_by_role("button", name="Details").click()
    await expect(page.locator("dl.meta")).to_contain_text("data.csv")
    await expect(page.get_by_role("button", name="Save tags")).to_be_hidden()
    await page.get_by_role("button", name="Close").click()

    # the server refuses every write of bob's, whatever the page shows
    bob = {"Authorization": f"Bearer {mint(ui_daemon, 'bob')['token']}"}
    base = f"{ui_daemon.client_url}/api/v1/vfolders/{VOLUME}/{ALICE_VFID}"
    answers = {
        "put": await page.request.put(f"{base}/files/new.txt", data=b"no", headers=bob),
        "mkdir": await page.request.post(f"{base}/mkdir", data={"path": "d"}, headers=bob),
        "move": await page.request.post(
            f"{base}/move", data={"src": "data.csv", "dst": "x.csv"}, headers=bob
        ),
        "delete": await page.request.delete(f"{base}/files/data.csv", headers=bob),
        "tags": await page.request.patch(
            f"{base}/metadata/data.csv", data={"tags": {"a": "b"}}, headers=bob
        ),
        "tus": await page.request.post(
            f"{ui_daemon.client_url}/upload",
            headers={
                **bob,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "2",
                "Upload-Metadata": ",".join(
                    f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in (("volume", VOLUME), ("vfid", ALICE_VFID), ("path", "t.txt"))
                ),
            },
        ),
    }
    for what, resp in answers.items():
        assert resp.status == 403, (what, resp.status)
        assert (await resp.json())["code"] == "permission-denied", what


async def test_a_stranger_does_not_see_the_vfolder(
    ui_daemon: Daemon, context: BrowserContext
) -> None:
    seed(ui_daemon)
    page = await context.new_page()
    await page.goto(mint(ui_daemon, "mallory")["ui_url"])
    await expect(page.get_by_text("You cannot see any vfolder yet.")).to_be_visible()
    await shot(page, "vfolders-none")
    await page.goto(page.url.split("#")[0] + f"#/browse/{VOLUME}/{ALICE_VFID.replace('/', '%2F')}/")
    await expect(page.get_by_role("alert")).to_contain_text("cannot see this vfolder")
    headers = {"Authorization": f"Bearer {mint(ui_daemon, 'mallory')['token']}"}
    root = ui_daemon.client_url
    base = f"{root}/api/v1/vfolders/{VOLUME}/{ALICE_VFID}"
    stats_url = f"{root}/api/v1/storage/stats"
    for url in (
        f"{base}/dir",
        f"{base}/files/data.csv",
        f"{stats_url}?volume=local&vfid={ALICE_VFID}",
    ):
        resp = await page.request.get(url, headers=headers)
        assert resp.status == 404, (url, resp.status)
    stats = await (await page.request.get(stats_url, headers=headers)).json()
    assert stats == {"volumes": [], "vfolders": []}
