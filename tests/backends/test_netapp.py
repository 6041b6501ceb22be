"""The netapp backend against the ONTAP REST emulator (``ontap_emulator.py``).

No filer is reachable here.  Every test drives the production client and volume against the
in-repo emulator on 127.0.0.1, which follows ONTAP's documented shapes (records, 202 + job,
error bodies); a local directory stands in for the NFS mount.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from backends.ontap_emulator import Emulator, free_port, start

from contract.backend_netapp import volume_options
from storage_proxy.core.errors import InvalidPath, NotSupported, PluginError, QuotaExceeded
from storage_proxy.core.files import ReadOptions
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
from storage_proxy.volumes.abc import VolumeDeps, WriteOptions
from storage_proxy.volumes.scan import TreeScanner
from storage_proxy_netapp import NetAppVolume
from storage_proxy_netapp.client import OntapClient
from storage_proxy_netapp.errors import OntapAuthError, OntapError, OntapJobFailed, OntapJobTimeout
from storage_proxy_nfs import NfsVolume


@pytest.fixture
async def emulated(tmp_path: Path) -> AsyncIterator[tuple[Emulator, str]]:
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    emulator = Emulator(nfs)
    runner, endpoint = await start(emulator)
    yield emulator, endpoint
    await runner.cleanup()


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[VolumeDeps]:
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.open()
    yield VolumeDeps(books=MetadataBooks(store), scanner=TreeScanner(0), scandir_limit=1000)
    await store.close()


@pytest.fixture
async def volume(emulated: tuple[Emulator, str], deps: VolumeDeps) -> AsyncIterator[NetAppVolume]:
    emulator, endpoint = emulated
    vol = NetAppVolume(
        "na", emulator.nfs_root, options=volume_options(emulator, endpoint), deps=deps
    )
    await vol.init()
    yield vol
    await vol.shutdown()


def client(endpoint: str, password: str = "secret", **kw: float) -> OntapClient:
    return OntapClient(endpoint, "admin", password, poll_interval=0.01, backoff=0.01, **kw)


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid4())


async def test_emulator_init_turns_quotas_on_and_uses_the_nfs_backend(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    assert emulator.quota_on and ("PATCH", f"/api/storage/volumes/{emulator.volume_uuid}") in (
        emulator.requests
    )
    assert isinstance(volume, NfsVolume)  # files move over the NFS mount
    caps = await volume.get_capabilities()
    assert {Capability.NATIVE_QUOTA, Capability.FAST_USAGE, Capability.LOCAL_PATH} <= caps
    fs = await volume.get_fs_usage()
    assert fs.capacity_bytes == emulator.size


async def test_emulator_quota_scope_is_a_qtree_with_a_tree_rule(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    qsid = scope()
    await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
    assert [q["name"] for q in emulator.qtrees.values()] == [qsid.pathname]
    assert volume.quota_scope_path(qsid).is_dir()  # the qtree, seen on the "NFS mount"
    (rule,) = emulator.rules.values()
    assert rule["type"] == "tree" and rule["space"]["hard_limit"] == 1 << 20
    (volume.quota_scope_path(qsid) / "blob").write_bytes(b"x" * 3000)
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert described is not None and (described.used_bytes, described.limit_bytes) == (
        3000,
        1 << 20,
    )
    await volume.quota_model.update_quota_scope(qsid, QuotaConfig(2 << 20))
    assert rule["space"]["hard_limit"] == 2 << 20
    await volume.quota_model.unset_quota(qsid)
    (tracking,) = emulator.rules.values()
    assert "hard_limit" not in tracking["space"]
    described = await volume.quota_model.describe_quota_scope(qsid)
    assert described is not None and described.limit_bytes is None
    await volume.quota_model.delete_quota_scope(qsid)
    assert not emulator.qtrees and not emulator.rules
    assert not volume.quota_scope_path(qsid).exists()


async def test_emulator_usage_of_all_scopes_comes_from_one_report(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    scopes = [scope() for _ in range(3)]
    for i, qsid in enumerate(scopes):
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(10_000))
        emulator.usage_override[qsid.pathname] = 1000 * i
    volume.quota_model.report_ttl = 60
    before = emulator.requests.count(("GET", "/api/storage/quota/reports"))
    remaining = [await volume.quota_model.remaining_bytes(q) for q in scopes]
    assert remaining == [10_000, 9_000, 8_000]
    assert emulator.requests.count(("GET", "/api/storage/quota/reports")) == before + 1


async def test_emulator_filer_limit_refuses_a_declared_size_up_front(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    qsid = scope()
    await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
    emulator.usage_override[qsid.pathname] = (1 << 20) - 10  # written by someone else
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 100

    with pytest.raises(QuotaExceeded):
        await volume.write(vfid, RelPath.parse("f"), body(), WriteOptions(size_hint=100))


async def test_emulator_failed_qtree_job_creates_nothing(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    emulator.polls_per_job = 3
    emulator.fail_next_job("Failed to create qtree")
    with pytest.raises(OntapJobFailed, match="Failed to create qtree"):
        await volume.quota_model.create_quota_scope(scope(), None)
    assert not emulator.qtrees and not emulator.rules
    job = list(emulator.jobs.values())[-1]
    assert job.state == "failure" and job.polls == 3  # polled through queued -> running


async def test_emulator_failed_rule_job_deletes_the_new_qtree(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    emulator, _ = emulated
    qsid = scope()
    emulator.fail_next_job("Invalid hard limit", after=1)  # the qtree succeeds, the rule fails
    with pytest.raises(OntapJobFailed, match="Invalid hard limit"):
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1))
    assert not emulator.qtrees and not volume.quota_scope_path(qsid).exists()


async def test_emulator_wrong_password_is_a_401_with_ontaps_error_body(
    emulated: tuple[Emulator, str], deps: VolumeDeps
):
    emulator, endpoint = emulated
    c = client(endpoint, password="wrong")
    with pytest.raises(OntapAuthError) as err:
        await c.find_volume(emulator.svm, emulator.volume)
    await c.close()
    assert err.value.http_status == 401 and err.value.ontap_code == "6"
    options = volume_options(emulator, endpoint) | {"password": "wrong"}
    vol = NetAppVolume("na", emulator.nfs_root, options=options, deps=deps)
    with pytest.raises(PluginError, match="401"):
        await vol.init()


async def test_emulator_missing_ontap_volume_refuses_the_volume(
    emulated: tuple[Emulator, str], deps: VolumeDeps
):
    emulator, endpoint = emulated
    options = volume_options(emulator, endpoint) | {"volume-name": "nope"}
    vol = NetAppVolume("na", emulator.nfs_root, options=options, deps=deps)
    with pytest.raises(PluginError, match="no volume 'nope' on SVM 'svm1'"):
        await vol.init()


async def test_emulator_5xx_is_retried_for_reads_and_not_for_a_post(
    emulated: tuple[Emulator, str],
):
    emulator, endpoint = emulated
    c = client(endpoint)
    emulator.fail_next_requests(2, status=503)
    assert (await c.find_volume(emulator.svm, emulator.volume)) is not None
    emulator.fail_next_requests(1, status=500)
    with pytest.raises(OntapError) as err:
        await c.create_qtree(emulator.svm, emulator.volume, "q1")
    assert err.value.http_status == 500 and not emulator.qtrees
    emulator.fail_next_requests(4, status=500)  # more than the 3 retries
    with pytest.raises(OntapError, match="500"):
        await c.find_volume(emulator.svm, emulator.volume)
    await c.close()


async def test_emulator_job_that_never_finishes_times_out(emulated: tuple[Emulator, str]):
    emulator, endpoint = emulated
    c = client(endpoint, job_timeout=0.3)
    emulator.hang_next_job()
    with pytest.raises(OntapJobTimeout, match="still running after 0.3 s"):
        await c.create_qtree(emulator.svm, emulator.volume, "q1")
    await c.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.fail("openssl cannot make a self-signed certificate here")
    return cert, key


async def test_emulator_tls_is_verified_unless_switched_off(
    emulated: tuple[Emulator, str], self_signed: tuple[Path, Path]
):
    emulator, _ = emulated
    cert, key = self_signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(emulator.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    endpoint = f"https://127.0.0.1:{port}"
    try:
        strict = OntapClient(endpoint, "admin", "secret", retries=0)  # verify-ssl: default on
        with pytest.raises(OntapError, match="unreachable"):
            await strict.find_volume(emulator.svm, emulator.volume)
        await strict.close()
        lax = OntapClient(endpoint, "admin", "secret", verify_ssl=False)
        assert await lax.find_volume(emulator.svm, emulator.volume) is not None
        await lax.close()
    finally:
        await runner.cleanup()


async def test_emulator_collections_are_followed_across_pages(
    volume: NetAppVolume, emulated: tuple[Emulator, str]
):
    """The ONTAP client runs on the shared REST client: ``_links.next`` is followed."""
    emulator, _ = emulated
    volume.client.page_size = 2
    scopes = [scope() for _ in range(5)]
    for qsid in scopes:
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
    before = emulator.requests.count(("GET", "/api/storage/quota/reports"))
    reports = await volume.quota_model.reports(fresh=True)
    assert {q.pathname for q in scopes} <= set(reports)
    assert emulator.requests.count(("GET", "/api/storage/quota/reports")) - before == 3


@pytest.mark.hostile
async def test_emulator_dot_snapshot_is_never_a_user_path(volume: NetAppVolume) -> None:
    """ONTAP shows ``.snapshot`` in every directory of an export: refused as any component of a
    user path, also behind a link (here a real directory stands in for ONTAP's)."""
    qsid = scope()
    await volume.quota_model.create_quota_scope(qsid, None)
    vfid = VFolderID(qsid, uuid.uuid4())
    await volume.create_vfolder(vfid)
    root = volume.vfolder_path(vfid)
    (root / ".snapshot" / "hourly").mkdir(parents=True)
    (root / ".snapshot" / "hourly" / "f").write_bytes(b"then")
    os.symlink(".snapshot/hourly", root / "ln")
    for probe in (".snapshot/hourly/f", "ln/f", ".snapshot"):
        with pytest.raises(InvalidPath):
            rel = RelPath.parse(probe)
            [c async for c in volume.read(vfid, rel, ReadOptions())]
    with pytest.raises(InvalidPath):
        await volume.delete_files(vfid, [RelPath.parse(".snapshot")], recursive=True)
    assert (root / ".snapshot" / "hourly" / "f").exists()


async def test_without_a_visible_snapshot_directory_no_snapshots_are_offered(
    emulated: tuple[Emulator, str], deps: VolumeDeps
) -> None:
    """Snapshot directory access off: ONTAP would take snapshots nobody could read."""
    emulator, endpoint = emulated
    emulator.snapdir.rmdir()
    vol = NetAppVolume(
        "na", emulator.nfs_root, options=volume_options(emulator, endpoint), deps=deps
    )
    await vol.init()
    try:
        caps = await vol.get_capabilities()
        assert Capability.SNAPSHOT not in caps and Capability.NATIVE_SNAPSHOT not in caps
        assert Capability.QUOTA in caps and Capability.FILE_VERSIONS in caps
        qsid = scope()
        await vol.quota_model.create_quota_scope(qsid, None)
        vfid = VFolderID(qsid, uuid.uuid4())
        await vol.create_vfolder(vfid)
        assert await vol.list_snapshots(vfid) == []
        for call in (vol.create_snapshot, vol.snapshot_tree, vol.delete_snapshot):
            with pytest.raises(NotSupported):
                await call(vfid, "s")
        assert emulator.snapshots == {}
    finally:
        await vol.shutdown()
