"""The UI for everyone: keyboard only, labelled controls, a narrow screen; a sign-in link's
token reaches no log and leaves the address bar; statistics with a chart; the API reference
pages of every listener."""

from __future__ import annotations

import tomllib

import pytest
from e2e_support import Daemon, http
from playwright.async_api import BrowserContext, Page, expect
from ui_support import JWT, mint, open_vfolder, put_file, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((el) => el.offsetParent !== null || el.closest('dialog[open]'))
  .filter((el) => {
    if (el.type === 'hidden') return false;
    const byLabel = el.id && document.querySelector(`label[for="${el.id}"]`);
    const named = (el.getAttribute('aria-label') || el.textContent || '').trim();
    return !(byLabel || named || el.labels?.length);
  })
  .map((el) => el.outerHTML.slice(0, 80))"""


async def unlabelled(page: Page) -> list[str]:
    result: list[str] = await page.evaluate(UNLABELLED)
    return result


async def test_keyboard_only_with_labels(ui_daemon: Daemon, context: BrowserContext) -> None:
    put_file(ui_daemon, mint(ui_daemon, "alice")["token"], "hello.txt", b"hi")
    page = await context.new_page()
    await page.goto(ui_daemon.client_url + "/ui/")
    token_box = page.get_by_label("User token")
    await expect(token_box).to_be_focused()
    assert await unlabelled(page) == []
    await shot(page, "signin")
    await page.keyboard.type("not-a-token")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    await token_box.fill(mint(ui_daemon, "alice")["token"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Your vfolders")).to_be_focused()
    await shot(page, "vfolders")
    assert await unlabelled(page) == []
    for _ in range(30):  # Tab until the vfolder's link has the focus, then open it
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('vfolder-link')"):
            break
    else:
        pytest.fail("the vfolder link cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator('tr[data-name="hello.txt"]')).to_be_visible()
    assert await unlabelled(page) == []
    # a dialog opened from the keyboard takes the focus and Escape closes it
    await page.locator('tr[data-name="hello.txt"]').get_by_role("button", name="Rename").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("New name")).to_be_focused()
    assert await unlabelled(page) == []
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()


async def test_narrow_screen(ui_daemon: Daemon, context: BrowserContext) -> None:
    token = mint(ui_daemon, "alice")["token"]
    put_file(ui_daemon, token, "a-rather-long-file-name-for-a-phone-screen.parquet", b"x" * 10)
    page = await context.new_page()
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.goto(mint(ui_daemon, "alice")["ui_url"])
    await expect(page.get_by_role("heading", name="Your vfolders")).to_be_visible()
    await shot(page, "narrow-vfolders")
    await open_vfolder(page)
    await shot(page, "narrow-browse")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 360px screen"
    for name in ("Download", "Rename", "Delete", "New folder"):
        button = page.get_by_role("button", name=name, exact=True).first
        await expect(button).to_be_in_viewport()


async def test_sign_in_link_leaves_no_token_behind(
    ui_daemon: Daemon, context: BrowserContext
) -> None:
    minted = mint(ui_daemon, "alice")
    assert minted["ui_url"].startswith(ui_daemon.client_url + "/ui/#token=")
    put_file(ui_daemon, minted["token"], "hello.txt", b"hi")
    page = await context.new_page()
    await page.goto(minted["ui_url"])
    await expect(page.get_by_role("heading", name="Your vfolders")).to_be_visible()
    assert minted["token"] not in page.url and "token" not in page.url
    await open_vfolder(page)
    async with page.expect_download():
        await (
            page.locator('tr[data-name="hello.txt"]').get_by_role("button", name="Download").click()
        )
    await page.get_by_role("link", name="Statistics").click()
    await expect(page.locator("svg.chart rect")).to_have_count(1)
    await shot(page, "statistics")
    log = ui_daemon.log_text()
    assert "GET /ui/" in log and "/download" in log
    assert JWT.search(log) is None, "a token reached the daemon's log"


async def test_api_reference_on_every_listener(ui_daemon: Daemon, context: BrowserContext) -> None:
    page = await context.new_page()
    assert ui_daemon.config_path is not None
    addr = tomllib.loads(ui_daemon.config_path.read_text())["api"]["manager"]["internal-addr"]
    urls = {
        "client": ui_daemon.client_url,
        "manager": ui_daemon.manager_url,
        "internal": f"http://127.0.0.1:{addr['port']}",
    }
    for name, base in urls.items():
        doc = http("GET", base + "/openapi.json").json()  # no credentials needed
        assert doc["openapi"].startswith("3.1")
        operations = sum(len(item) for item in doc["paths"].values())
        await page.goto(base + "/docs")
        await expect(page.locator("section.op")).to_have_count(operations)
        await expect(page.locator("h1")).to_contain_text(doc["info"]["title"])
        await shot(page, f"docs-{name}")
