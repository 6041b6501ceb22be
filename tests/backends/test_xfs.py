"""The xfs backend.

Three kinds of test, named by prefix:
- ``test_real_xfs_*`` run against a real loop-mounted XFS image (project ids really assigned,
  the start-up check really reading the mount; no ``prjquota``: this kernel has no quota support);
- ``test_captured_*`` drive the production code through the command-runner seam with
  ``xfs_quota`` outputs captured from its documented formats (``xfs_outputs/``);
- the registry tests run on the real mount's filesystem too (files, lock, atomic rewrite).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from contract.backend_xfs import fallback_options, loop_mounted_xfs
from storage_proxy.core.errors import InsufficientStorage, PluginError, QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import (
    Capability,
    QuotaConfig,
    QuotaScopeID,
    QuotaScopeType,
    VFolderID,
)
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.services.books import MetadataBooks
from storage_proxy.volumes.abc import ReadOptions, VolumeDeps, WriteOptions
from storage_proxy.volumes.quota import ProxyQuotaModel
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_xfs import XfsVolume
from storage_proxy_xfs.projects import ProjectRegistry
from storage_proxy_xfs.quota import XfsQuotaModel
from storage_proxy_xfs.runner import CommandResult, CommandRunner
from storage_proxy_xfs.xfsquota import XfsQuota, XfsQuotaError, parse_report, parse_state

OUTPUTS = Path(__file__).parent / "xfs_outputs"


def captured(name: str) -> str:
    return (OUTPUTS / name).read_text()


def new_scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())


class FakeRunner(CommandRunner):
    """Answers each ``xfs_quota -c`` subcommand with a captured output; records every argv."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[list[str]] = []

    async def run(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        command = argv[argv.index("-c") + 1]
        return self.answers.get(command.split()[0], CommandResult(0, "", ""))

    def commands(self, verb: str) -> list[str]:
        return [a[a.index("-c") + 1] for a in self.calls if a[a.index("-c") + 1].startswith(verb)]


@pytest.fixture(scope="module")
def xfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with loop_mounted_xfs(tmp_path_factory.mktemp("xfs")) as mnt:
        yield mnt


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[VolumeDeps]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    await store.close()


def lsproj(path: Path) -> int:
    out = subprocess.run(["xfs_io", "-c", "lsproj", str(path)], capture_output=True, text=True)
    return int(out.stdout.split("=")[1])


# -- the real loop-mounted XFS ------------------------------------------------------------------
async def test_real_xfs_project_assignment_tags_the_scope_tree(xfs_mount: Path, tmp_path: Path):
    registry = ProjectRegistry(
        tmp_path / "projects", tmp_path / "projid", xfs_mount / ".lock", (1000, 1010)
    )
    xfs = XfsQuota(CommandRunner(), xfs_mount, registry.projects_file, registry.projid_file)
    scope_dir = xfs_mount / uuid.uuid4().hex
    scope_dir.mkdir()
    prid = await registry.register("sp-vol-scope", scope_dir)
    await xfs.assign_project(scope_dir, prid)
    (scope_dir / "later.bin").write_bytes(b"x")  # created after: inherits the project
    assert lsproj(scope_dir) == prid and lsproj(scope_dir / "later.bin") == prid
    assert (tmp_path / "projects").read_text() == f"{prid}:{scope_dir}\n"
    assert (tmp_path / "projid").read_text() == f"sp-vol-scope:{prid}\n"


async def test_real_xfs_registry_allocates_unique_ids_and_keeps_foreign_entries(
    xfs_mount: Path, tmp_path: Path
):
    (tmp_path / "projid").write_text("# admin's own\nlogs:1000\n")
    (tmp_path / "projects").write_text("1000:/srv/logs\n")
    lock = xfs_mount / ".xfs-projects.lock"
    registries = [  # two "processes": separate in-process locks, one lock file on the volume
        ProjectRegistry(tmp_path / "projects", tmp_path / "projid", lock, (1000, 1100))
        for _ in range(2)
    ]
    names = [f"sp-v-{i}" for i in range(30)]
    ids = await asyncio.gather(
        *(registries[i % 2].register(n, xfs_mount / n) for i, n in enumerate(names))
    )
    assert sorted(ids) == list(range(1001, 1031))
    assert await registries[0].register("sp-v-3", xfs_mount / "x") == ids[3]  # idempotent
    assert await registries[1].unregister("sp-v-3") == ids[3]
    assert await registries[0].lookup("sp-v-3") is None
    projid = (tmp_path / "projid").read_text()
    projects = (tmp_path / "projects").read_text()
    assert projid.startswith("# admin's own\nlogs:1000\n") and "1000:/srv/logs\n" in projects
    assert f":{ids[3]}\n" not in projid and f"{ids[3]}:" not in projects
    assert len(projid.splitlines()) == 2 + 29 and len(projects.splitlines()) == 1 + 29
    assert lock.exists() and not list(tmp_path.glob(".*.tmp-*"))  # no temp file left


async def test_real_xfs_registry_refuses_when_the_id_range_is_exhausted(
    xfs_mount: Path, tmp_path: Path
):
    registry = ProjectRegistry(
        tmp_path / "projects", tmp_path / "projid", xfs_mount / ".lock", (5, 6)
    )
    await registry.register("a", xfs_mount / "a")
    await registry.register("b", xfs_mount / "b")
    with pytest.raises(InsufficientStorage, match=r"\[5, 6\]"):
        await registry.register("c", xfs_mount / "c")


async def test_real_xfs_startup_refuses_a_mount_without_prjquota(
    xfs_mount: Path, tmp_path: Path, deps: VolumeDeps
):
    options = fallback_options(tmp_path) | {"fallback-to-proxy-quota": False}
    volume = XfsVolume("x", xfs_mount / "refused", options=options, deps=deps)
    with pytest.raises(PluginError) as err:
        await volume.init()
    message = str(err.value)
    assert "mounted without project quotas: add 'prjquota'" in message
    assert str(xfs_mount) in message and "accounting off" in message
    assert "fallback-to-proxy-quota" in message


async def test_real_xfs_startup_falls_back_to_proxy_quotas_with_a_warning(
    xfs_mount: Path, tmp_path: Path, deps: VolumeDeps, caplog: pytest.LogCaptureFixture
):
    volume = XfsVolume("x", xfs_mount / "fallback", options=fallback_options(tmp_path), deps=deps)
    with caplog.at_level(logging.WARNING, logger="storage_proxy_xfs.volume"):
        await volume.init()
    assert "add 'prjquota'" in caplog.text and "falling back" in caplog.text
    assert type(volume.quota_model) is ProxyQuotaModel
    caps = await volume.get_capabilities()
    assert Capability.QUOTA in caps and Capability.LOCAL_PATH in caps
    assert Capability.NATIVE_QUOTA not in caps and Capability.FAST_USAGE not in caps


async def test_real_xfs_startup_refuses_a_path_that_is_not_on_xfs(tmp_path: Path, deps: VolumeDeps):
    volume = XfsVolume("x", tmp_path / "plain", options={}, deps=deps)
    with pytest.raises(PluginError, match="not on XFS"):
        await volume.init()


# -- captured xfs_quota outputs through the command-runner seam ----------------------------------
def test_captured_report_is_parsed_with_and_without_header():
    for name in ("report_p_b_n.txt", "report_p_b_n_N.txt"):
        report = parse_report(captured(name))
        assert sorted(report) == [0, 1001, 1002, 1003]
        assert report[1001].used_bytes == 10240 * 1024
        assert report[1001].hard_limit_bytes == report[1001].soft_limit_bytes == 64 << 20
        assert report[1002].used_bytes == 52224 * 1024  # over its limit, in grace
        assert report[1003].hard_limit_bytes is None  # 0: no limit


def test_captured_state_is_parsed():
    on = parse_state(captured("state_p_on.txt"))
    assert on is not None and on.accounting and on.enforcement
    acct = parse_state(captured("state_p_accounting_only.txt"))
    assert acct is not None and acct.accounting and not acct.enforcement
    assert parse_state(captured("state_p_noquota.txt")) is None


def native_answers(report: str = "report_p_b_n_N.txt") -> dict[str, CommandResult]:
    return {
        "state": CommandResult(0, captured("state_p_on.txt"), ""),
        "project": CommandResult(0, captured("project_s.txt"), ""),
        "report": CommandResult(0, captured(report), ""),
    }


async def native_volume(
    tmp_path: Path, deps: VolumeDeps, runner: FakeRunner, **extra: object
) -> XfsVolume:
    root = tmp_path / "srv-xfs"
    mounts = tmp_path / "mounts"
    mounts.write_text(captured("mounts_prjquota.txt").replace("/srv/xfs", str(root)))
    options = {
        "mounts-file": str(mounts),
        "projects-file": str(tmp_path / "projects"),
        "projid-file": str(tmp_path / "projid"),
        "project-id-range": [1001, 1003],
        "quota-usage-ttl": 0,
        **extra,
    }
    volume = XfsVolume("vol", root / "vol", options=options, deps=deps, runner=runner)
    await volume.init()
    return volume


async def test_captured_startup_check_passes_with_prjquota_and_state_on(
    tmp_path: Path, deps: VolumeDeps
):
    runner = FakeRunner(native_answers())
    volume = await native_volume(tmp_path, deps, runner)
    assert isinstance(volume.quota_model, XfsQuotaModel)
    assert await volume.get_capabilities() >= {Capability.NATIVE_QUOTA, Capability.FAST_USAGE}
    assert runner.calls[0][-1] == str(tmp_path / "srv-xfs")  # the mount point, not the subdir
    assert runner.commands("state") == ["state -p"]


async def test_captured_startup_refuses_when_enforcement_is_off(tmp_path: Path, deps: VolumeDeps):
    answers = native_answers() | {
        "state": CommandResult(0, captured("state_p_accounting_only.txt"), "")
    }
    with pytest.raises(PluginError, match="enforcement off"):
        await native_volume(tmp_path, deps, FakeRunner(answers))


async def test_captured_quota_scope_lifecycle_runs_the_documented_commands(
    tmp_path: Path, deps: VolumeDeps
):
    runner = FakeRunner(native_answers())
    volume = await native_volume(tmp_path, deps, runner)
    qsid = new_scope()
    await volume.quota_model.create_quota_scope(qsid, QuotaConfig(64 << 20))
    path = volume.quota_scope_path(qsid)
    name = f"sp-vol-{qsid.pathname}"
    assert (tmp_path / "projid").read_text() == f"{name}:1001\n"
    assert (tmp_path / "projects").read_text() == f"1001:{path}\n"
    await volume.quota_model.update_quota_scope(qsid, QuotaConfig(1000))  # rounded up to 1 KiB
    await volume.quota_model.unset_quota(qsid)
    assert runner.commands("project") == [f"project -s -p {path} 1001"]
    assert runner.commands("limit") == [
        "limit -p bsoft=65536k bhard=65536k 1001",
        "limit -p bsoft=1k bhard=1k 1001",
        "limit -p bsoft=0 bhard=0 1001",
    ]
    argv = runner.calls[-1]
    assert argv[:7] == ["xfs_quota", "-x", "-D", str(tmp_path / "projects"), "-P"] + [
        str(tmp_path / "projid"),
        "-c",
    ]
    await volume.quota_model.delete_quota_scope(qsid)
    assert runner.commands("limit")[-1] == "limit -p bsoft=0 bhard=0 1001"
    assert (tmp_path / "projid").read_text() == "" and (tmp_path / "projects").read_text() == ""


async def test_captured_report_gives_usage_of_all_scopes_in_one_call(
    tmp_path: Path, deps: VolumeDeps
):
    runner = FakeRunner(native_answers("report_p_b_n.txt"))
    volume = await native_volume(tmp_path, deps, runner, **{"quota-usage-ttl": 60})
    scopes = [new_scope() for _ in range(3)]
    for qsid in scopes:
        await volume.quota_model.create_quota_scope(qsid, None)
    model = volume.quota_model
    assert await model.remaining_bytes(scopes[0]) == (65536 - 10240) * 1024
    assert await model.remaining_bytes(scopes[1]) == 0  # over its limit
    assert await model.remaining_bytes(scopes[2]) is None  # no limit
    assert len(runner.commands("report")) == 1  # one report for every scope
    described = await model.describe_quota_scope(scopes[0])
    assert described is not None
    assert (described.used_bytes, described.limit_bytes) == (10240 * 1024, 64 << 20)


async def test_captured_native_limit_refuses_a_declared_size_up_front(
    tmp_path: Path, deps: VolumeDeps
):
    volume = await native_volume(tmp_path, deps, FakeRunner(native_answers()))
    qsid = new_scope()
    await volume.quota_model.create_quota_scope(qsid, None)  # gets project 1001 (64 MiB)
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)

    async def body() -> AsyncIterator[bytes]:
        yield b"x"

    with pytest.raises(QuotaExceeded):
        await volume.write(vfid, RelPath.parse("f"), body(), WriteOptions(size_hint=60 << 20))
    await volume.write(vfid, RelPath.parse("f"), body(), WriteOptions(size_hint=1))


async def test_captured_limit_failure_rolls_the_scope_back(tmp_path: Path, deps: VolumeDeps):
    answers = native_answers() | {"limit": CommandResult(1, "", captured("limit_enosys.stderr"))}
    volume = await native_volume(tmp_path, deps, FakeRunner(answers))
    qsid = new_scope()
    with pytest.raises(XfsQuotaError, match="Function not implemented") as failed:
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
    assert failed.value.status == 503  # the storage cannot answer now, as any backend's tool
    assert not volume.quota_scope_path(qsid).exists()
    assert (tmp_path / "projid").read_text() == ""


async def test_real_xfs_snapshots_and_restores_are_reflinks(
    xfs_mount: Path, tmp_path: Path, deps: VolumeDeps
) -> None:
    """On XFS with ``reflink=1`` (mkfs.xfs's default) a snapshot shares its files' blocks: the
    filesystem's free space hardly moves for a 32 MiB file, nor when it is restored."""
    from storage_proxy.core.snapshots import RestoreOptions

    volume = XfsVolume(
        "xfs", xfs_mount / f"snap-{uuid.uuid4().hex[:8]}", options=fallback_options(tmp_path),
        deps=deps,
    )  # fmt: skip
    await volume.init()
    try:
        vfid = VFolderID(new_scope(), uuid.uuid4())
        await volume.quota_model.create_quota_scope(vfid.quota_scope_id, None)
        await volume.create_vfolder(vfid)
        size = 32 << 20

        async def body() -> AsyncIterator[bytes]:
            for i in range(size >> 20):
                yield bytes([i]) * (1 << 20)

        await volume.write(vfid, RelPath.parse("big.bin"), body())

        def free() -> int:
            subprocess.run(["sync", "-f", str(xfs_mount)], check=False)
            st = os.statvfs(xfs_mount)
            return st.f_bavail * st.f_frsize

        before = await asyncio.to_thread(free)
        await volume.create_snapshot(vfid, "s1")
        into = RestoreOptions(relpaths=(RelPath.parse("big.bin"),), into=RelPath.parse("back"))
        await volume.restore_snapshot(vfid, "s1", into)
        after = await asyncio.to_thread(free)
        assert before - after < 4 << 20, (before, after)  # a copy would take 64 MiB
        copied = await volume.read(vfid, RelPath.parse("back/big.bin"), ReadOptions()).__anext__()
        assert copied == bytes([0]) * (1 << 20)
    finally:
        await volume.shutdown()


def test_real_xfs_joins_staged_parts_by_sharing_blocks(xfs_mount: Path) -> None:
    """tus concatenation on XFS (reflink=1, mkfs's default): the parts' blocks are shared with
    the joined file, not copied; an unaligned part is copied by the kernel instead."""
    from storage_proxy.volumes.fstree import join_files

    work = xfs_mount / f"join-{uuid.uuid4().hex}"
    work.mkdir()
    datas = [os.urandom(4 << 20), os.urandom(1 << 20), os.urandom(12345)]
    fds = []
    for i, data in enumerate(datas):
        (work / f"p{i}").write_bytes(data)
        fds.append(os.open(work / f"p{i}", os.O_RDONLY))
    dst = os.open(work / "joined", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        report = join_files(dst, fds)
        again = join_files(dst, fds[:1])  # now at an unaligned offset: not shareable
    finally:
        for fd in (*fds, dst):
            os.close(fd)
    assert report.cloned == sum(map(len, datas)) and report.copied == 0
    assert again.cloned == 0 and again.kernel_copied + again.copied == len(datas[0])
    assert (work / "joined").read_bytes() == b"".join(datas) + datas[0]
