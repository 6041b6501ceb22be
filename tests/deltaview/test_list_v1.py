"""ListObjects version 1 (``GET /datalake`` without ``list-type``): boto3's ``list_objects`` and raw
HTTP, with the same visibility rules as version 2."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from conftest import signed

from storage_proxy.deltaview.testing import ThreadedView

NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


def _v2_keys(s3: Any, **kw: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="datalake", **kw).get("Contents", [])]


def test_v1_lists_what_v2_lists_and_names_the_owner(s3: Any) -> None:
    r = s3.list_objects(Bucket="datalake", Prefix="sales/")
    keys = [o["Key"] for o in r["Contents"]]
    assert keys == _v2_keys(s3, Prefix="sales/")
    assert keys and not any(k.startswith("sales/region=us/") for k in keys)  # denied partition
    assert all(o["Owner"]["ID"] for o in r["Contents"])
    assert r["IsTruncated"] is False and r["Marker"] == ""
    top = s3.list_objects(Bucket="datalake", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["events/", "sales/"]


def test_v1_paging_by_marker_visits_every_key_once(s3: Any) -> None:
    everything = _v2_keys(s3)
    seen: list[str] = []
    marker = ""
    while True:
        r = s3.list_objects(Bucket="datalake", MaxKeys=2, Marker=marker)
        page = [o["Key"] for o in r.get("Contents", [])]
        assert len(page) <= 2
        seen += page
        if not r["IsTruncated"]:
            assert "NextMarker" not in r
            break
        assert r["NextMarker"] == page[-1]
        marker = r["NextMarker"]
    assert seen == everything == sorted(everything)


def test_v1_common_prefix_as_marker_skips_what_lies_under_it(s3: Any) -> None:
    r = s3.list_objects(Bucket="datalake", Prefix="sales/", Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["sales/_delta_log/"]
    assert r["IsTruncated"] is True and r["NextMarker"] == "sales/_delta_log/"
    r2 = s3.list_objects(
        Bucket="datalake", Prefix="sales/", Delimiter="/", MaxKeys=1, Marker=r["NextMarker"]
    )
    assert [p["Prefix"] for p in r2["CommonPrefixes"]] == ["sales/region=eu/"]
    assert r2["IsTruncated"] is False and "Contents" not in r2


def test_v1_raw_xml_shape(view: ThreadedView, s3: Any) -> None:
    first = _v2_keys(s3, Prefix="sales/region=eu/")[0]
    query = urllib.parse.urlencode(
        {"prefix": "sales/region=eu/", "max-keys": "1", "marker": first}, quote_via=quote
    )
    url = f"{view.endpoint}/datalake?{query}"
    with urllib.request.urlopen(signed("GET", url)) as resp:
        doc = ElementTree.fromstring(resp.read())
    assert doc.findtext("s3:Marker", namespaces=NS) == first
    assert doc.findtext("s3:MaxKeys", namespaces=NS) == "1"
    assert doc.findtext("s3:IsTruncated", namespaces=NS) == "true"
    (key,) = [e.text for e in doc.findall("s3:Contents/s3:Key", NS)]
    assert key is not None and key > first
    assert doc.findtext("s3:NextMarker", namespaces=NS) == key
    assert doc.find("s3:KeyCount", NS) is None  # a version 2 element


@pytest.mark.parametrize("query", ["list-type=3", "list-type=1", "max-keys=-1"])
def test_v1_bad_arguments_are_invalid_argument(view: ThreadedView, query: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(signed("GET", f"{view.endpoint}/datalake?{query}"))
    assert e.value.code == 400
    assert b"<Code>InvalidArgument</Code>" in e.value.read()
