"""The weka backend against the WEKA REST API v2 emulator (``weka_emulator.py``).

What is WEKA's own: quotas keyed by the directory's inode id (``resolvePath``), "unlimited" as
the largest int64, bearer tokens renewed with the refresh token, nested quotas (at most four
levels) and the cluster's refusals.  The start-up failures every vendor shares are in
``test_vendor_common.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from backends.vendor_cases import case

from storage_proxy.core.errors import PluginError
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.rest import RestNotFound, RestRejected
from storage_proxy_weka.client import UNLIMITED

WEKA = case("weka")


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.USER, uuid.uuid4())


async def test_a_scope_quota_is_keyed_by_its_inode(tmp_path: Path, volume_deps: VolumeDeps):
    async with WEKA.running(tmp_path / "weka", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(2 << 20))
        inode = volume.quota_scope_path(qsid).stat().st_ino
        assert emulator.quotas[inode]["hard_limit_bytes"] == 2 << 20
        (volume.quota_scope_path(qsid) / "f").write_bytes(b"w" * 4321)
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (4321, 2 << 20)
        await volume.quota_model.unset_quota(qsid)  # still counted, "unlimited"
        assert emulator.quotas[inode]["hard_limit_bytes"] == UNLIMITED
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (4321, None)
        fs = await volume.get_fs_usage()
        assert fs.capacity_bytes == emulator.capacity


async def test_an_expired_token_is_renewed_with_the_refresh_token(
    tmp_path: Path, volume_deps: VolumeDeps
):
    async with WEKA.running(tmp_path / "weka", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
        assert (emulator.logins, emulator.refreshes) == (1, 0)
        emulator.expire_access_tokens()
        assert (await volume.quota_model.describe_quota_scope(qsid)).limit_bytes == 1 << 20
        assert (emulator.logins, emulator.refreshes) == (1, 1)
        emulator.expire_access_tokens()
        emulator.refresh.clear()  # the refresh token is refused too: a full login
        assert (await volume.quota_model.describe_quota_scope(qsid)).limit_bytes == 1 << 20
        assert (emulator.logins, emulator.refreshes) == (2, 1)


async def test_vfolder_quotas_nest_up_to_four_levels(tmp_path: Path, volume_deps: VolumeDeps):
    async with WEKA.running(tmp_path / "weka", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(8 << 20))
        vfid = VFolderID(qsid, uuid.uuid4())
        await volume.create_vfolder(vfid)
        await volume.set_vfolder_quota(vfid, 1 << 20)
        vf_inode = volume.vfolder_path(vfid).stat().st_ino
        assert emulator.quotas[vf_inode]["hard_limit_bytes"] == 1 << 20
        client, fs_uid = volume.quota_api.client, volume.quota_api.fs_uid
        deeper = volume.vfolder_path(vfid)
        for level in ("a", "b", "c"):
            deeper = deeper / level
            deeper.mkdir()
            inode = deeper.stat().st_ino
            if level != "c":
                await client.set_quota(fs_uid, inode, 1 << 19)
        with pytest.raises(RestRejected, match="at most 4 levels"):
            await client.set_quota(fs_uid, inode, 1 << 18)
        await volume.set_vfolder_quota(vfid, None)
        assert vf_inode not in emulator.quotas


async def test_the_emulator_refuses_what_weka_does(tmp_path: Path, volume_deps: VolumeDeps):
    async with WEKA.running(tmp_path / "weka", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        inode = volume.quota_scope_path(qsid).stat().st_ino
        client, fs_uid = volume.quota_api.client, volume.quota_api.fs_uid
        await client.delete_quota(fs_uid, inode)
        with pytest.raises(RestNotFound, match="Directory has no quota"):
            await client.rest.get(f"/api/v2/fileSystems/{fs_uid}/quota/{inode}")
        await client.delete_quota(fs_uid, inode)  # none left: not an error
        body = {"hard_limit_bytes": 10, "soft_limit_bytes": 20, "grace_seconds": 0}
        with pytest.raises(RestRejected, match="Soft limit cannot exceed"):
            await client.rest.request(
                "PUT", f"/api/v2/fileSystems/{fs_uid}/quota/{inode}", json=body
            )
        assert await client.resolve(fs_uid, "/no/such/dir") is None


async def test_a_file_system_that_is_not_there_is_named(tmp_path: Path, volume_deps: VolumeDeps):
    async with WEKA.started(tmp_path / "weka", volume_deps, **{"fs-name": "nope"}) as (_, vol, e):
        with pytest.raises(PluginError, match=f"WEKA at {e} has no file system 'nope'"):
            await vol.init()
    async with WEKA.started(tmp_path / "weka2", volume_deps, **{"fs-path": "/missing"}) as (
        _,
        vol,
        _e,
    ):
        with pytest.raises(PluginError, match="has no directory /missing"):
            await vol.init()
