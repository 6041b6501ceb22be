"""Everyday work in the web UI: drag and drop, folder uploads, new folder, rename, move,
delete, paging, tags, links that expire, folders as zip — and names that look like markup
stay text."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import pytest
from e2e_support import Daemon, http
from playwright.async_api import BrowserContext, Page, expect
from ui_support import ALICE_VFID, VOLUME, mint, open_vfolder, put_file, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
XSS = '<img src=x onerror="window.__xss=1">.txt'
DROP = """([names]) => {
  const dt = new DataTransfer();
  for (const name of names) dt.items.add(new File([`content of ${name}`], name));
  const zone = document.getElementById("dropzone");
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""


async def signed_in(page: Page, daemon: Daemon, user: str = "alice") -> None:
    await page.goto(mint(daemon, user)["ui_url"])
    await open_vfolder(page)


def upload_state(page: Page, path: str):  # type: ignore[no-untyped-def]
    return page.locator(f"li.upload[data-path={json.dumps(path)}] .upload-state")


async def dialog_ok(page: Page, label: str, value: str | None = None, ok: str = "OK") -> None:
    dialog = page.get_by_role("dialog")
    if value is not None:
        await dialog.get_by_label(label).fill(value)
    await dialog.get_by_role("button", name=ok).click()
    await expect(dialog).to_be_hidden()


async def test_drop_folders_and_file_operations(
    ui_daemon: Daemon, context: BrowserContext, tmp_path: Path
) -> None:
    page = await context.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda d: alerts.append(d.message))
    await signed_in(page, ui_daemon)

    await page.evaluate(DROP, [["notes.txt", XSS]])
    for name in ("notes.txt", XSS):
        await expect(
            page.locator(f"li.upload[data-path={json.dumps(name)}] .upload-state")
        ).to_have_text("Done")
    await expect(page.locator("table.files")).to_contain_text(XSS)
    assert await page.locator("table.files img").count() == 0
    assert await page.evaluate("window.__xss") is None and alerts == []

    tree = tmp_path / "dataset"
    (tree / "train").mkdir(parents=True)
    (tree / "train" / "a.csv").write_text("1,2\n")
    (tree / "labels.txt").write_text("cat\n")
    await page.set_input_files("#pick-folder", str(tree))
    await expect(
        page.locator('li.upload[data-path="dataset/train/a.csv"] .upload-state')
    ).to_have_text("Done")
    await expect(
        page.locator('li.upload[data-path="dataset/labels.txt"] .upload-state')
    ).to_have_text("Done")
    await shot(page, "browse-after-uploads")

    await page.get_by_role("button", name="New folder").click()
    await dialog_ok(page, "Folder name", "archive", ok="Create")
    await expect(page.locator('tr[data-name="archive"]')).to_be_visible()

    await page.locator('tr[data-name="notes.txt"]').get_by_role("button", name="Rename").click()
    await dialog_ok(page, "New name", "notes-v2.txt", ok="Rename")
    await expect(page.locator('tr[data-name="notes-v2.txt"]')).to_be_visible()
    await expect(page.locator('tr[data-name="notes.txt"]')).to_have_count(0)

    await page.locator('tr[data-name="notes-v2.txt"]').get_by_role("button", name="Move").click()
    await dialog_ok(page, "Move to (path in this vfolder)", "archive/notes-v2.txt", ok="Move")
    await expect(page.locator('tr[data-name="notes-v2.txt"]')).to_have_count(0)

    await (
        page.locator(f"tr[data-name={json.dumps(XSS)}]")
        .get_by_role("button", name="Delete")
        .click()
    )
    await shot(page, "dialog-delete")
    await dialog_ok(page, "", ok="Delete")
    await expect(page.locator(f"tr[data-name={json.dumps(XSS)}]")).to_have_count(0)

    await page.get_by_role("link", name="archive/").click()
    await expect(page.locator('tr[data-name="notes-v2.txt"]')).to_be_visible()
    await expect(page.get_by_role("navigation", name="Breadcrumb")).to_contain_text("archive")
    await shot(page, "browse-subfolder")
    await page.get_by_role("link", name="root").click()

    # a folder downloads as a zip
    row = page.locator('tr[data-name="dataset"]')
    async with page.expect_download() as info:
        await row.get_by_role("button", name="Download zip").click()
    saved = tmp_path / "dataset.zip"
    await (await info.value).save_as(saved)
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as zf:
        names = set(zf.namelist())
        assert {"train/a.csv", "labels.txt"} <= {n.split("dataset/", 1)[-1] for n in names}, names


async def test_tags_links_and_paging(
    ui_daemon: Daemon, context: BrowserContext, tmp_path: Path
) -> None:
    token = mint(ui_daemon, "alice")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{ui_daemon.client_url}/api/v1/vfolders/{VOLUME}/{ALICE_VFID}"
    for i in range(23):
        put_file(ui_daemon, token, f"f{i:02d}.txt", f"n{i}".encode())
    page = await context.new_page()
    await page.goto(mint(ui_daemon, "alice")["ui_url"].replace("/ui/#", "/ui/?page=10#"))
    await open_vfolder(page)
    rows = page.locator("table.files tbody tr")
    await expect(rows).to_have_count(10)
    more = page.get_by_role("button", name="Load more")
    await more.click()
    await expect(rows).to_have_count(20)
    await more.click()
    await expect(rows).to_have_count(23)
    await expect(more).to_be_hidden()

    row = page.locator('tr[data-name="f07.txt"]')
    await row.get_by_role("button", name="Details").click()
    await (
        page.get_by_role("dialog")
        .get_by_label("Tags (key=value, one per line)")
        .fill("stage=raw\nowner=alice")
    )
    await page.get_by_role("button", name="Save tags").click()
    await expect(page.get_by_role("dialog")).to_be_hidden()
    meta = http("GET", f"{base}/metadata/f07.txt", headers=auth).json()
    assert meta["tags"] == {"stage": "raw", "owner": "alice"}

    await row.get_by_role("button", name="Link").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Expires in").select_option("15m")
    await dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Download link")
    await expect(link).not_to_have_value("")
    await shot(page, "dialog-link")
    url = await link.input_value()
    assert url.startswith(ui_daemon.client_url + "/download?token=")
    await expect(dialog).to_contain_text("Expires")
    fetched = http("GET", url)  # no user token: the link is the credential
    assert fetched.status == 200 and fetched.body == b"n7"
    await dialog.get_by_role("button", name="Close").click()

    # a link's lifetime is capped, and an expired link is refused
    resp = http("POST", f"{base}/links", {"path": "f07.txt", "expires_in": "30d"}, headers=auth)
    assert resp.status == 400 and "download-link-max-expire" in resp.json()["detail"]
    short = http("POST", f"{base}/links", {"path": "f07.txt", "expires_in": 1}, headers=auth)
    assert short.status == 201
    await asyncio.sleep(2.1)
    expired = http("GET", ui_daemon.client_url + short.json()["path"])
    # /download answers as storage-proxy 26.9.6 does (400: a token is a query parameter there)
    assert expired.status == 400 and expired.json()["code"] == "invalid-token"
