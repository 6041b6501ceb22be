"""The five vendor backends are found through the entry-point group, options validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage_proxy.core.errors import PluginError
from storage_proxy.volumes.abc import VolumeDeps
from storage_proxy.volumes.registry import VolumeRegistry, available_backends, load_backend
from storage_proxy.volumes.vendorvolume import VendorQuotaVolume
from storage_proxy_ddn import DdnVolume
from storage_proxy_dellemc_onefs import OneFSVolume
from storage_proxy_purestorage import PureStorageVolume
from storage_proxy_vast import VastVolume
from storage_proxy_weka import WekaVolume

VENDORS = {
    "purestorage": PureStorageVolume,
    "dellemc-onefs": OneFSVolume,
    "weka": WekaVolume,
    "vast": VastVolume,
    "ddn": DdnVolume,
}


def test_each_vendor_backend_is_an_entry_point() -> None:
    assert set(VENDORS) <= set(available_backends())
    for name, cls in VENDORS.items():
        assert load_backend(name) is cls
        assert cls.backend_name == name and issubclass(cls, VendorQuotaVolume)


@pytest.mark.parametrize("name", [n for n in VENDORS if n != "ddn"])
def test_a_missing_option_is_named(name: str, tmp_path: Path, volume_deps: VolumeDeps) -> None:
    config = {"v": {"backend": name, "path": str(tmp_path), "options": {"verify-ssl": "no"}}}
    with pytest.raises(
        PluginError, match=r"volume 'v': invalid options: .*'endpoint': 'is required'"
    ):
        VolumeRegistry.instantiate(config, volume_deps)
