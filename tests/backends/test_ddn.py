"""The ddn backend: production code running the fake ``lfs`` (``fake_lfs.py``) for real.

No Lustre filesystem can run here.  The backend runs ``lfs`` through the real command runner
(asyncio subprocess, timeout); the fake answers in lfs's documented formats and counts the bytes
really stored below the directories it tagged.  The parsers are also checked on their own
against the formats of ``lustre/utils/lfs.c`` (a long filesystem name on its own line, ``*``
over a limit, ``[...]`` for inaccurate values).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends.fake_lfs import FakeLfs

from contract.backend_ddn import volume_options
from storage_proxy.core.errors import PluginError, QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.volumes.abc import VolumeDeps, WriteOptions
from storage_proxy_ddn import DdnVolume
from storage_proxy_ddn.lfs import LfsError, kib, parse_project, parse_quota


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())


@pytest.fixture
def fake(tmp_path: Path) -> FakeLfs:
    return FakeLfs(tmp_path / "fake-lfs")


@pytest.fixture
async def volume(
    tmp_path: Path, fake: FakeLfs, volume_deps: VolumeDeps
) -> AsyncIterator[DdnVolume]:
    root = tmp_path / "lustre"
    root.mkdir()
    vol = DdnVolume("exa", root, options=volume_options(fake), deps=volume_deps)
    await vol.init()
    yield vol
    await vol.shutdown()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_scope_is_a_lustre_project(volume: DdnVolume, fake: FakeLfs) -> None:
    qsid = scope()
    await volume.quota_model.create_quota_scope(qsid, QuotaConfig(64 << 10))
    path = str(volume.quota_scope_path(qsid))
    mount = str(volume.mount_path)
    assert fake.calls("project")[-1] == ["project", "-p", "100000", "-r", "-s", path]
    assert fake.calls("setquota")[-1] == ["setquota", "-p", "100000", "-b", "0", "-B", "64", mount]
    assert f"{qsid.pathname}:100000" in (volume.mount_path / ".lustre-projid").read_text()
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)
    await volume.write(vfid, RelPath.parse("a.bin"), body(b"a" * 5000))
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert (described.used_bytes, described.limit_bytes) == (5 << 10, 64 << 10)  # KiB blocks
    with pytest.raises(QuotaExceeded):
        data = b"b" * (64 << 10)
        await volume.write(
            vfid, RelPath.parse("b.bin"), body(data), WriteOptions(size_hint=len(data))
        )
    await volume.quota_model.unset_quota(qsid)
    assert fake.state()["limits"]["100000"]["B"] == 0
    assert (await volume.quota_model.describe_quota_scope(qsid)).limit_bytes is None


async def test_deleting_a_scope_frees_its_project_id(volume: DdnVolume, fake: FakeLfs) -> None:
    first, second = scope(), scope()
    await volume.quota_model.create_quota_scope(first, QuotaConfig(1 << 20))
    await volume.quota_model.delete_quota_scope(first)
    assert ["project", "-C", "-r", str(volume.quota_scope_path(first))] in fake.calls("project")
    assert first.pathname not in (volume.mount_path / ".lustre-projid").read_text()
    await volume.quota_model.create_quota_scope(second, None)  # the id is free again, unlimited
    assert fake.calls("project")[-1][:3] == ["project", "-p", "100000"]
    assert fake.state()["limits"]["100000"]["B"] == 0


async def test_lfs_is_found_on_the_path(
    tmp_path: Path, fake: FakeLfs, volume_deps: VolumeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake.bin}:{os.environ['PATH']}")
    options = {**volume_options(fake), "lfs-binary": "lfs"}
    vol = DdnVolume("exa", tmp_path / "lustre", options=options, deps=volume_deps)
    await vol.init()
    await vol.quota_model.create_quota_scope(scope(), QuotaConfig(1 << 20))
    await vol.shutdown()
    assert fake.calls("setquota")


@pytest.mark.parametrize(
    ("options", "state", "named"),
    [
        ({"lfs-binary": "/nonexistent/lfs"}, {}, "command not found: install the Lustre client"),
        ({}, {"project_quota_off": True}, "does not take Lustre project ids"),
        ({"command-timeout": 0.5}, {"hang": True}, "timed out after 0.5 s"),
    ],
    ids=["no-lfs", "project-quota-off", "lfs-hangs"],
)
async def test_what_stops_project_quotas_is_named_at_start_up(
    tmp_path: Path,
    fake: FakeLfs,
    volume_deps: VolumeDeps,
    options: dict[str, object],
    state: dict[str, object],
    named: str,
) -> None:
    fake.update(**state)
    vol = DdnVolume(
        "exa", tmp_path / "lustre", options={**volume_options(fake), **options}, deps=volume_deps
    )
    t0 = time.monotonic()
    with pytest.raises(PluginError, match=named):
        await vol.init()
    assert time.monotonic() - t0 < 10


def test_lfs_quota_output_is_parsed_as_lfs_prints_it() -> None:
    short = """Disk quotas for prj 1000 (pid 1000):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
    /mnt/lustre    4097*      0    4096       -       3       0       0       -
"""
    parsed = parse_quota(1000, short)
    assert (parsed.used_bytes, parsed.hard_limit_bytes, parsed.files) == (4097 << 10, 4 << 20, 3)
    wrapped = """Disk quotas for prj 7 (pid 7):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
/lustre/exafs/vfroot/a-long-path
                  [12]       0       0       -       2       0       0       -
pid 7 is using default file quota setting
"""
    parsed = parse_quota(7, wrapped)
    assert (parsed.used_bytes, parsed.hard_limit_bytes) == (12 << 10, None)
    for garbage in ("", "prj quotas are not enabled.", "Filesystem kbytes\n /mnt x y"):
        with pytest.raises(LfsError):
            parse_quota(1, garbage)
    assert parse_project(" 1000 P /mnt/lustre/x\n") == (1000, True)
    assert parse_project("    0 - /mnt/lustre\n") == (0, False)
    with pytest.raises(LfsError):
        parse_project("lfs: nothing")
    assert (kib(None), kib(1), kib(1024), kib(1025)) == ("0", "1", "1", "2")
