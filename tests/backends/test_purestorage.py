"""The purestorage backend against the FlashBlade REST emulator (``purestorage_emulator.py``).

What is FlashBlade's own: a quota scope is a file system (NFS-exported, hard limit through
``provisioned`` + ``hard_limit_enabled``), sessions from an API token, REST version discovery,
destroy-then-eradicate, and the array's refusals.  The start-up failures every vendor shares
are in ``test_vendor_common.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from backends.vendor_cases import case

from storage_proxy.core.errors import PluginError, QuotaScopeExists, QuotaScopeNotEmpty
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.rest import RestRejected

PURE = case("purestorage")


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())


async def test_each_scope_is_an_exported_file_system(tmp_path: Path, volume_deps: VolumeDeps):
    async with PURE.running(tmp_path / "fb", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(8 << 20))
        fs = emulator.file_systems[f"sp-{qsid.pathname}"]
        assert (fs["provisioned"], fs["hard_limit_enabled"]) == (8 << 20, True)
        assert fs["nfs"] == {
            "v3_enabled": True,
            "v4_1_enabled": True,
            "rules": "*(rw,no_root_squash)",
        }
        assert volume.quota_scope_path(qsid).is_dir()  # where the automounter shows it
        (volume.quota_scope_path(qsid) / "blob").write_bytes(b"x" * 5000)
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (5000, 8 << 20)
        await volume.quota_model.unset_quota(qsid)
        assert (fs["provisioned"], fs["hard_limit_enabled"]) == (None, False)
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (5000, None)
        fs_usage = await volume.get_fs_usage()
        assert (fs_usage.capacity_bytes, fs_usage.used_bytes) == (emulator.capacity, 5000)


async def test_a_limit_under_the_usage_is_set_with_ignore_usage(
    tmp_path: Path, volume_deps: VolumeDeps
):
    async with PURE.running(tmp_path / "fb", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        (volume.quota_scope_path(qsid) / "blob").write_bytes(b"x" * 10_000)
        client = volume.quota_api.client
        name = f"sp-{qsid.pathname}"
        with pytest.raises(RestRejected, match="ignore_usage"):  # what the array refuses
            await client.rest.request(
                "PATCH",
                client._path("file-systems"),
                params={"names": name},
                json={"provisioned": 4096, "hard_limit_enabled": True},
            )
        await volume.quota_model.update_quota_scope(qsid, QuotaConfig(4096))
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (10_000, 4096)
        assert await volume.quota_model.remaining_bytes(qsid) == 0


async def test_a_scope_is_eradicated_only_once_it_holds_no_vfolder(
    tmp_path: Path, volume_deps: VolumeDeps
):
    async with PURE.running(tmp_path / "fb", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        vfid = VFolderID(qsid, uuid.uuid4())
        await volume.create_vfolder(vfid)
        with pytest.raises(QuotaScopeNotEmpty):
            await volume.quota_model.delete_quota_scope(qsid)
        name = f"sp-{qsid.pathname}"
        client = volume.quota_api.client
        with pytest.raises(RestRejected, match="must be destroyed"):
            await client.rest.request(
                "DELETE", client._path("file-systems"), params={"names": name}
            )
        await volume.delete_vfolder(vfid)  # trashed inside the scope: a rename cannot leave it
        await volume.quota_model.delete_quota_scope(qsid)
        assert name not in emulator.file_systems
        assert not await volume.quota_model.quota_scope_exists(qsid)
        with pytest.raises(RestRejected, match="does not exist"):
            await client.set_limit(name, 1 << 20)


async def test_an_expired_session_logs_in_again(tmp_path: Path, volume_deps: VolumeDeps):
    async with PURE.running(tmp_path / "fb", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
        logins = emulator.count("POST", "/api/login")
        emulator.expire_sessions()
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert described.limit_bytes == 1 << 20
        assert emulator.count("POST", "/api/login") == logins + 1


async def test_the_rest_version_must_be_offered(tmp_path: Path, volume_deps: VolumeDeps):
    async with PURE.started(tmp_path / "fb", volume_deps, **{"api-version": "2.99"}) as (
        _,
        volume,
        endpoint,
    ):
        with pytest.raises(PluginError, match=r"does not offer REST 2\.99 \(1\.12, 2\.0"):
            await volume.init()
    async with PURE.running(tmp_path / "fb2", volume_deps) as (emulator, volume):
        assert volume.quota_api.client.api_version == "2.12"  # the newest 2.x offered
        assert ("GET", "/api/2.12/file-systems") in [(m, p) for m, p, _ in emulator.requests]


async def test_concurrent_creates_of_one_scope_leave_it_standing(
    tmp_path: Path, volume_deps: VolumeDeps
):
    async with PURE.running(tmp_path / "fb", volume_deps) as (emulator, volume):
        qsid = scope()
        results = await asyncio.gather(
            *[volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20)) for _ in range(4)],
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, QuotaScopeExists) for r in results if r is not None)
        assert emulator.file_systems[f"sp-{qsid.pathname}"]["provisioned"] == 1 << 20
