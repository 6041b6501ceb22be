"""Content-Disposition (RFC 6266 / 5987): the ASCII fallback replaces exactly the characters it
cannot carry (controls, DEL, non-ASCII, ``"`` and ``\\``), whatever the name, and the UTF-8 form
carries the exact name (lone surrogates of undecodable names included)."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st

from storage_proxy.api.ranges import content_disposition


def _fallback_of(name: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)


@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x2FF)))
def test_the_fallback_replaces_exactly_what_ascii_quoting_cannot_carry(name: str) -> None:
    header = content_disposition(name)
    prefix, _, encoded = header.partition("; filename*=UTF-8''")
    assert prefix == f'attachment; filename="{_fallback_of(name)}"'
    assert encoded == quote(name.encode("utf-8", "surrogateescape"), safe="")
    assert unquote_to_bytes(encoded).decode("utf-8", "surrogateescape") == name


def test_plain_and_awkward_names() -> None:
    assert content_disposition("f1.bin") == (
        "attachment; filename=\"f1.bin\"; filename*=UTF-8''f1.bin"
    )
    for name, fallback in (('a"b\\c', "a_b_c"), ("tab\there", "tab_here"), ("del\x7f", "del_")):
        assert f'filename="{fallback}"' in content_disposition(name)
    assert 'filename="r_sum_.txt"' in content_disposition("résumé.txt")
    assert 'filename="_"' in content_disposition("\udcff")  # an undecodable byte's surrogate
