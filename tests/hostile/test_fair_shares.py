"""One tenant cannot starve the others: a page of a huge directory costs its reader seconds of a
worker's threads, so one caller runs only ``costly-per-caller`` listings at once (more wait,
then 429) while other tenants' requests answer as fast as ever."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import StartHostile, Tenant, make_tenant

ENTRIES = 100_000
HAMMER = 40  # more than the default io-threads (32)


def _big_dir(where: Path, n: int = ENTRIES) -> None:
    where.mkdir()
    seed = where / "seed"
    seed.write_bytes(b"")
    for i in range(n):
        os.link(seed, where / f"f{i:07d}")  # hard links: quick to make, each an entry


def _get(url: str, token: str, timeout: float = 120) -> tuple[int, float]:
    started = time.monotonic()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.monotonic() - started


@pytest.fixture
def shm_tenant(start_hostile: StartHostile) -> Iterator[Tenant]:
    path = Path("/dev/shm") / f"sp-fair-{uuid.uuid4().hex}"
    try:
        yield start_hostile(volume_path=path)
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.mark.hostile
@pytest.mark.parametrize("door", ["dir", "files"])
def test_paging_a_huge_directory_does_not_starve_other_tenants(
    shm_tenant: Tenant, door: str
) -> None:
    t = shm_tenant
    _big_dir(t.mount / "big")
    victim = make_tenant(t.daemon, owner="victor")
    (victim.mount / "hello.txt").write_bytes(b"hi")
    (victim.mount / "sub").mkdir()
    page = (
        f"{t.files_url}/dir?path=big&limit=1"
        if door == "dir"
        else f"{t.files_url}/files?prefix=big/&limit=1"
    )
    assert _get(page, t.token)[0] == 200
    answers: Counter[int] = Counter()

    def hammer() -> None:
        answers[_get(page, t.token)[0]] += 1

    threads = [threading.Thread(target=hammer) for _ in range(HAMMER)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    worst = 0.0
    victim_pages = (
        f"{victim.files_url}/files/hello.txt",
        f"{victim.files_url}/dir?path=sub",  # a listing of her own: her own share
        f"{victim.files_url}/files?limit=10",
    )
    for _ in range(3):
        for url in victim_pages:
            status, took = _get(url, victim.token, 20)
            assert status == 200, url
            worst = max(worst, took)
    for th in threads:
        th.join()
    assert worst < 1.0, f"another tenant's small request took {worst:.2f}s"
    assert set(answers) <= {200, 429} and sum(answers.values()) == HAMMER, answers
