"""Parsed vfolder and scope ids are shared by their text (``core/types.py``): equal to a fresh
parse, errors raised every time, and only canonical-length texts kept (uuid.UUID also takes any
number of hyphens: long spellings of one id must not fill the cache)."""

from __future__ import annotations

import uuid

import pytest

from storage_proxy.core import types
from storage_proxy.core.errors import InvalidParameter
from storage_proxy.core.types import QuotaScopeID, VFolderID


def _text(kind: str = "project") -> str:
    return f"{kind}:{uuid.uuid4()}/{uuid.uuid4().hex}"


def test_the_same_text_gives_the_same_object_equal_to_a_fresh_parse() -> None:
    raw = _text()
    first, second = VFolderID.parse(raw), VFolderID.parse(raw)
    assert first is second and str(first) == raw
    assert first == VFolderID._parse(raw)
    scope = raw.split("/")[0]
    assert QuotaScopeID.parse(scope) is QuotaScopeID.parse(scope) == first.quota_scope_id


def test_errors_are_raised_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidParameter):
            VFolderID.parse("user:not-a-uuid/abc")


def test_long_spellings_are_parsed_but_not_kept() -> None:
    raw = _text("user")
    scope, folder = raw.split("/")
    padded = f"{scope}/{'-'.join(folder)}"  # the same id, 63 characters longer
    before = types._parse_vfid.cache_info().currsize
    assert VFolderID.parse(padded) == VFolderID.parse(raw)
    assert types._parse_vfid.cache_info().currsize == before + 1  # the canonical text only
    assert len(raw) <= types.CANONICAL_ID_LENGTH < len(padded)
