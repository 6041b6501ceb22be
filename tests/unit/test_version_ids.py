"""Version ids from callers: every id an S3 server may hand out passes; nothing that could name a
directory step or carry a separator does."""

from __future__ import annotations

import pytest

from storage_proxy.core.errors import InvalidParameter
from storage_proxy.core.snapshots import check_version_id


@pytest.mark.parametrize(
    "vid",
    [
        "-jrQiTiMoSGbSDtJc4cm7Ti4InW3mi3",  # Ceph RGW: its alphabet puts '-' and '.' first too
        ".HwJ5Lw0Mn2ZbVSbT1uMUuONwGDRTj-",
        "null",  # S3: the version of an object written before versioning was on
        "1764531200000000000-9f2c",  # posix
        "a" * 128,
        "_x",
    ],
)
def test_ids_storages_hand_out_pass(vid: str) -> None:
    assert check_version_id(vid) == vid


@pytest.mark.parametrize(
    "vid", [".", "..", "", "a/b", "a\\b", "a+b", "a b", "a" * 129, "x\x00", None, 7]
)
def test_ids_that_could_name_a_place_are_refused(vid: object) -> None:
    with pytest.raises(InvalidParameter):
        check_version_id(vid)
