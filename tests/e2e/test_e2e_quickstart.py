"""Done when: a newcomer, with the README alone, goes from a fresh clone to a file uploaded in the
browser and downloaded with the CLI in under ten minutes.

This runs the README's own quick-start block, unchanged but for the ports (free ones instead of
6021/6022, given to the daemon through its documented environment overrides), in a fresh copy of
the checkout with a fresh home directory, on the system's Python when it is a stock, externally
managed one (Debian 12's): ``install-dev.sh`` makes the venv and installs from the package index.
Then it drives the web UI in Chromium with the link the block printed, uploads a file there and
downloads it with ``storage-proxy-client`` as the README says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_support import clean_env, free_ports
from playwright.async_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from ui_support import chromium, make_file, sha256_of, shot  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 600.0
SYSTEM_PYTHON = Path("/usr/bin/python3")
LINK = re.compile(r"http://127\.0\.0\.1:\d+/ui/#token=[A-Za-z0-9._-]+")


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- quickstart: begin -->", 1)[1].split("<!-- quickstart: end -->")[0]
    return block.split("```sh\n", 1)[1].split("```", 1)[0]


def fresh_copy(dest: Path) -> Path:
    """The checkout's tracked files as they are now (a fresh clone of this state)."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def stock_python() -> str:
    """Debian's own python3 when it is there and externally managed; else this interpreter."""
    if SYSTEM_PYTHON.exists():
        probe = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and (Path(probe.stdout.strip()) / "EXTERNALLY-MANAGED").exists():
            return str(SYSTEM_PYTHON)
    return sys.executable


def stop_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def test_readme_first_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```sh\n", 1)[1].splitlines()[:2]
    assert first[0].startswith("scripts/install-dev.sh && .venv/bin/storage-proxy start-server")
    assert first[1].startswith("scripts/test.sh")
    assert "scripts/install-dev.sh" in quickstart()


def test_quickstart_from_a_fresh_copy(tmp_path: Path) -> None:
    started = time.monotonic()
    clone = fresh_copy(tmp_path / "clone")
    client, manager, internal = free_ports(3)
    script = quickstart().replace("127.0.0.1:6021", f"127.0.0.1:{client}")
    script = script.replace("127.0.0.1:6022", f"127.0.0.1:{manager}")
    (clone / "quickstart.sh").write_text(script)
    python = stock_python()
    env = clean_env(tmp_path)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env.update(
        PYTHON=python,
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
        STORAGE_PROXY_API__CLIENT__SERVICE_ADDR=f"127.0.0.1:{client}",
        STORAGE_PROXY_API__MANAGER__SERVICE_ADDR=f"127.0.0.1:{manager}",
        STORAGE_PROXY_API__MANAGER__INTERNAL_ADDR=f"127.0.0.1:{internal}",
        STORAGE_PROXY_URL=f"http://127.0.0.1:{client}",  # the CLI's documented override
    )
    out_path = tmp_path / "quickstart.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "quickstart.sh"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the daemon it starts stays in this group: stopped below
        )
    try:
        try:
            proc.wait(timeout=BUDGET)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the quick start took over {BUDGET}s:\n{out_path.read_text()}")
        output = out_path.read_text()
        assert proc.returncode == 0, output
        # install-dev.sh talks: each step with its time, the next commands at the end
        assert output.count("==> ") >= 3 and "done in" in output and "Next:" in output, output
        if python == str(SYSTEM_PYTHON):
            assert "externally managed (PEP 668)" in output
        assert (clone / ".venv" / "bin" / "storage-proxy").exists()
        assert "hello, storage" in output  # curl's download
        assert (clone / "copy.txt").read_text() == "hello, storage\n"  # the CLI's
        assert "docs/hello.txt" in output  # ls
        links = LINK.findall(output)
        assert links, output
        local = tmp_path / "from-browser.bin"
        digest = make_file(local, 3 << 20)
        asyncio.run(_upload_in_browser(links[-1], local))
        _download_with_cli(links[-1], clone, env, tmp_path / "back.bin")
        assert sha256_of(tmp_path / "back.bin") == digest
    finally:
        stop_group(proc.pid)
    elapsed = time.monotonic() - started
    print(f"quick start: {elapsed:.0f}s from a fresh copy (budget {BUDGET:.0f}s)")
    assert elapsed < BUDGET


async def _upload_in_browser(link: str, local: Path) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(link)
        await page.locator("a.vfolder-link").click()
        await expect(page.locator('tr[data-name="hello.txt"]')).to_be_visible()
        await page.set_input_files("#pick-files", str(local))
        state = page.locator('li.upload[data-path="from-browser.bin"] .upload-state')
        await expect(state).to_have_text("Done", timeout=60_000)
        await shot(page, "quickstart-browser-upload")


def _download_with_cli(link: str, clone: Path, env: dict[str, str], dest: Path) -> None:
    vfid = re.search(r"^VFID=(\S+)$", quickstart(), re.M)
    assert vfid is not None
    token = link.split("#token=", 1)[1]
    url = link.split("/ui/", 1)[0]
    result = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "storage-proxy-client"),
            "download",
            "local",
            vfid.group(1),
            "from-browser.bin",
            str(dest),
        ],
        env={**env, "STORAGE_PROXY_URL": url, "STORAGE_PROXY_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256 verified" in result.stdout
