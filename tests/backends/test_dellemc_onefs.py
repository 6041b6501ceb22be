"""The dellemc-onefs backend against the OneFS Platform API emulator (``onefs_emulator.py``).

What is OneFS's own: directory quotas (enforced, or accounting when a scope has no limit),
nested quotas for vfolders and the cluster's parent-threshold check, the SmartQuotas license
and the ``ifs-path`` checked at start-up, and the cluster's refusals.  The start-up failures
every vendor shares are in ``test_vendor_common.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from backends.vendor_cases import case

from storage_proxy.core.errors import InvalidParameter, PluginError
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.rest import RestNotFound, RestRejected

ONEFS = case("dellemc-onefs")


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid4())


def by_path(emulator, path: str) -> dict:
    (quota,) = [q for q in emulator.quotas.values() if q["path"] == path]
    return quota


async def test_a_scope_without_a_limit_has_an_accounting_quota(
    tmp_path: Path, volume_deps: VolumeDeps
):
    async with ONEFS.running(tmp_path / "ifs", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        quota = by_path(emulator, f"/ifs/data/vfroot/{qsid.pathname}")
        assert (quota["enforced"], quota["thresholds"]["hard"]) == (False, None)
        assert quota["include_snapshots"] is False
        (volume.quota_scope_path(qsid) / "f").write_bytes(b"z" * 7000)
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (7000, None)  # usage.fslogical
        await volume.quota_model.update_quota_scope(qsid, QuotaConfig(1 << 20))
        assert (quota["enforced"], quota["thresholds"]["hard"]) == (True, 1 << 20)
        await volume.quota_model.unset_quota(qsid)
        assert (quota["enforced"], quota["thresholds"]["hard"]) == (False, None)
        fs = await volume.get_fs_usage()
        assert fs.capacity_bytes == emulator.capacity // 8192 * 8192


async def test_a_vfolder_limit_is_a_nested_directory_quota(tmp_path: Path, volume_deps: VolumeDeps):
    async with ONEFS.running(tmp_path / "ifs", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(4 << 20))
        vfid = VFolderID(qsid, uuid.uuid4())
        await volume.create_vfolder(vfid)
        await volume.set_vfolder_quota(vfid, 1 << 20)
        path = "/ifs/data/vfroot/" + "/".join(vfid.relative_parts)
        assert by_path(emulator, path)["thresholds"]["hard"] == 1 << 20
        await volume.write(vfid, RelPath.parse("a.bin"), _body(b"a" * 3000))
        model = volume.quota_model
        assert (await model.quota(model.target(vfid), fresh=True)).used_bytes == 3000
        with pytest.raises(InvalidParameter, match="parent quota"):  # above its scope's limit
            await volume.set_vfolder_quota(vfid, 8 << 20)
        await volume.delete_vfolder(vfid)  # its own quota goes first
        assert [q["path"] for q in emulator.quotas.values()] == [
            f"/ifs/data/vfroot/{qsid.pathname}"
        ]


async def _body(data: bytes):
    yield data


async def test_what_is_missing_on_the_cluster_is_named(tmp_path: Path, volume_deps: VolumeDeps):
    async with ONEFS.started(tmp_path / "ifs", volume_deps, **{"ifs-path": "/ifs/data/other"}) as (
        emulator,
        volume,
        _,
    ):
        emulator.license_status = "Expired"
        with pytest.raises(PluginError) as err:
            await volume.init()
    message = str(err.value)
    assert "SmartQuotas is not licensed (license status 'Expired')" in message
    assert "has no directory /ifs/data/other" in message


async def test_the_emulator_refuses_what_onefs_does(tmp_path: Path, volume_deps: VolumeDeps):
    async with ONEFS.running(tmp_path / "ifs", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        client = volume.quota_api.client
        path = f"/ifs/data/vfroot/{qsid.pathname}"
        with pytest.raises(RestRejected, match="409.*Quota already exists") as err:
            await client.create_directory_quota(path, None)
        assert err.value.vendor_code == "AEC_CONFLICT"
        with pytest.raises(RestNotFound, match="does not exist"):
            await client.create_directory_quota("/ifs/data/vfroot/nope", None)
        with pytest.raises(RestNotFound, match="AEC_NOT_FOUND|not found"):
            await client.rest.get(client._quotas + "/bm90LWEtcXVvdGE")
        with pytest.raises(RestRejected, match="resume cannot be used with other options"):
            await client.rest.get(client._quotas, {"resume": "x", "path": path})
        await client.delete_quota("bm90LWEtcXVvdGE")  # an unknown id: nothing to delete
