"""The vast backend against the VMS REST emulator (``vast_emulator.py``).

What is VAST's own: a named quota on each scope's path, JWT tokens (renewed on a 401 or a 403
"Token is invalid or expired") or an API token, the view that must export the volume path, and
VMS's refusals (a 503 for a second quota on a path, which is not retried).  The start-up
failures every vendor shares are in ``test_vendor_common.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trafaret as t
from backends.vendor_cases import case

from storage_proxy.core.errors import PluginError
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.rest import RestError, RestNotFound, RestRejected
from storage_proxy_vast import VastVolume

VAST = case("vast")


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid4())


async def test_a_scope_is_a_named_quota_on_its_path(tmp_path: Path, volume_deps: VolumeDeps):
    async with VAST.running(tmp_path / "vast", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(3 << 20))
        (quota,) = emulator.quotas.values()
        assert (quota["name"], quota["path"]) == (f"sp-{qsid.pathname}", f"/vfroot/{qsid.pathname}")
        assert quota["hard_limit"] == 3 << 20
        (volume.quota_scope_path(qsid) / "f").write_bytes(b"v" * 1234)
        described = await volume.quota_model.describe_quota_scope(qsid)
        assert (described.used_bytes, described.limit_bytes) == (1234, 3 << 20)
        await volume.quota_model.unset_quota(qsid)
        assert quota["hard_limit"] is None
        assert (await volume.quota_model.describe_quota_scope(qsid)).limit_bytes is None
        fs = await volume.get_fs_usage()
        assert (fs.capacity_bytes, fs.used_bytes) == (emulator.capacity, 1234)


async def test_an_expired_token_is_renewed(tmp_path: Path, volume_deps: VolumeDeps):
    async with VAST.running(tmp_path / "vast", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
        emulator.expire_access_tokens()  # VMS then answers 403 "Token is invalid or expired"
        assert (await volume.quota_model.describe_quota_scope(qsid)).limit_bytes == 1 << 20
        assert emulator.count("POST", "/api/v1/token/refresh/") == 1


async def test_an_api_token_may_be_used_instead(tmp_path: Path, volume_deps: VolumeDeps):
    options = {"user": None, "password": None, "api-token": "vast-api-token-8f1e2d3c"}
    async with VAST.running(tmp_path / "vast", volume_deps, **options) as (emulator, volume):
        await volume.quota_model.create_quota_scope(scope(), None)
        assert emulator.count("POST", "/api/v1/token/") == 0
        assert emulator.seen_headers[-1]["Authorization"] == "Api-Token vast-api-token-8f1e2d3c"


def test_exactly_one_kind_of_credentials(tmp_path: Path, volume_deps: VolumeDeps):
    base = {"endpoint": "https://vms", "vast-path": "/vfroot"}
    for wrong in ({}, {"user": "u", "password": "p", "api-token": "t"}, {"user": "u"}):
        with pytest.raises(t.DataError):
            VastVolume("vast", tmp_path, options={**base, **wrong}, deps=volume_deps)


async def test_a_path_no_view_exports_is_named(tmp_path: Path, volume_deps: VolumeDeps):
    async with VAST.started(tmp_path / "vast", volume_deps) as (emulator, volume, endpoint):
        emulator.views = ["/elsewhere"]
        with pytest.raises(PluginError, match=f"VAST at {endpoint} has no view exporting /vfroot"):
            await volume.init()


async def test_the_emulator_refuses_what_vms_does(tmp_path: Path, volume_deps: VolumeDeps):
    async with VAST.running(tmp_path / "vast", volume_deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, None)
        client = volume.quota_api.client
        posts = emulator.count("POST", "/api/v1/quotas/")
        with pytest.raises(RestError, match="503.*already exists") as err:
            await client.create_quota("other-name", f"/vfroot/{qsid.pathname}", None)
        assert err.value.http_status == 503
        assert emulator.count("POST", "/api/v1/quotas/") == posts + 1  # not retried
        with pytest.raises(RestRejected, match="does not exist") as err:
            await client.create_quota("x", "/vfroot/nope", None)
        assert err.value.target == "path"
        with pytest.raises(RestNotFound, match="Not found"):
            await client.rest.get("/api/v1/quotas/999/")
        await client.delete_quota("999")  # unknown: nothing to delete
