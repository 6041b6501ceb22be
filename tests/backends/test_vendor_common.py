"""What every REST vendor backend must do, against its emulator (``vendor_cases.py``).

At start-up: refuse the volume naming what is wrong -- credentials refused, endpoint
unreachable, an endpoint that hangs, answers that are not the vendor's, a certificate that does
not verify (TLS is verified unless ``verify-ssl = false``) -- and never a credential in a message
or a log line.  Listings are followed page by page.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends.tls import self_signed
from backends.vendor_cases import CASES, VendorCase

from storage_proxy.core.errors import PluginError, QuotaExceeded
from storage_proxy.core.paths import RelPath
from storage_proxy.core.types import QuotaConfig, QuotaScopeID, QuotaScopeType, VFolderID
from storage_proxy.metadata.sqlite import SqliteMetadataStore
from storage_proxy.volumes.abc import VolumeDeps

pytestmark = pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)


@pytest.fixture
def deps(volume_deps: VolumeDeps) -> VolumeDeps:
    return volume_deps


def scope() -> QuotaScopeID:
    return QuotaScopeID(QuotaScopeType.PROJECT, uuid.uuid4())


async def refused(case: VendorCase, tmp_path: Path, deps: VolumeDeps, **kw: object) -> str:
    """The start-up error of a volume started with ``kw`` (its options, or a switch)."""
    faults = kw.pop("faults", None)
    async with case.started(tmp_path / "vol", deps, **kw) as (emulator, volume, _):
        assert volume is not None
        if faults:
            getattr(emulator.faults, str(faults))(50)
        with pytest.raises(PluginError) as err:
            await volume.init()
        secrets = case.secrets(emulator)
    message = str(err.value)
    assert volume.name in message
    for secret in secrets:
        assert secret not in message
    return message


async def test_wrong_credentials_refuse_the_volume(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    message = await refused(case, tmp_path, deps, **case.wrong_credentials)
    assert "401" in message


async def test_an_unreachable_endpoint_is_named(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    message = await refused(case, tmp_path, deps, endpoint="http://127.0.0.1:9")
    assert "http://127.0.0.1:9" in message and "unreachable" in message


async def test_an_endpoint_that_hangs_is_an_error_not_a_hang(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    t0 = time.monotonic()
    message = await refused(case, tmp_path, deps, faults="hang", **{"request-timeout": 0.2})
    assert "no answer within the timeout" in message
    assert time.monotonic() - t0 < 15


async def test_answers_that_are_not_the_vendors_are_named(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    message = await refused(case, tmp_path, deps, faults="garble")
    assert "not JSON" in message


async def test_tls_is_verified_unless_switched_off(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    cert, ctx = self_signed(tmp_path)
    message = await refused(case, tmp_path, deps, ssl_context=ctx)
    assert "certificate" in message.lower()
    for options in ({"verify-ssl": False}, {"ca-file": str(cert)}):
        async with case.started(tmp_path / "vol", deps, ssl_context=ctx, **options) as (
            _,
            volume,
            endpoint,
        ):
            assert volume is not None and endpoint.startswith("https://")
            await volume.init()
            await volume.shutdown()


async def test_credentials_never_reach_a_log_line(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await refused(case, tmp_path, deps, **case.wrong_credentials)
    async with case.started(tmp_path / "vol", deps) as (emulator, volume, _):
        assert volume is not None
        emulator.faults.fail(2, status=502)  # retried, with a warning each
        await volume.init()
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
        emulator.faults.fail(1, status=502)
        assert await volume.quota_model.describe_quota_scope(qsid) is not None
        await volume.shutdown()
        secrets = case.secrets(emulator)
    assert "retrying" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text


async def test_listings_are_followed_page_by_page(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps
) -> None:
    async with case.started(tmp_path / "vol", deps) as (emulator, volume, _):
        assert volume is not None
        await volume.init()
        case.set_page_size(emulator, 2)
        scopes = [scope() for _ in range(5)]
        for i, qsid in enumerate(scopes):
            await volume.quota_model.create_quota_scope(qsid, QuotaConfig((i + 1) << 20))
        before = len(emulator.requests)
        model = volume.quota_model
        report = await model.api.report(model.target(scopes[0]))
        pages = len(emulator.requests) - before
        await volume.shutdown()
    assert {q.pathname for q in scopes} <= set(report)
    assert sorted(report[q.pathname].limit_bytes or 0 for q in scopes) == [
        (i + 1) << 20 for i in range(5)
    ]
    assert pages >= 3


async def test_a_vfolder_limit_refuses_writes(
    case: VendorCase, tmp_path: Path, deps: VolumeDeps, metadata_store: SqliteMetadataStore
) -> None:
    """``PATCH /folder/quota`` as the manager API applies it: natively where the product nests
    quotas, and kept in the metadata store, which the proxy checks writes against everywhere."""
    async with case.running(tmp_path / "vol", deps) as (emulator, volume):
        qsid = scope()
        await volume.quota_model.create_quota_scope(qsid, QuotaConfig(1 << 20))
        vfid = VFolderID(qsid, uuid.uuid4())
        await volume.create_vfolder(vfid)
        await volume.set_vfolder_quota(vfid, 8192)
        # the registry entry the vfolder service keeps (volumes only store)
        await metadata_store.register_vfolder(volume.name, str(vfid), str(qsid))
        await metadata_store.update_vfolder(volume.name, str(vfid), limit_bytes=8192)
        model = volume.quota_model
        native = await model.quota(model.target(vfid), fresh=True)
        assert (native is not None) == volume.quota_api.nests
        await volume.write(vfid, RelPath.parse("fits.bin"), _body(b"f" * 4096))
        with pytest.raises(QuotaExceeded):
            await volume.write(vfid, RelPath.parse("big.bin"), _body(b"b" * 8192))
        assert await model.headroom(vfid) == 4096


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data
