"""Audit lines are written by a prebuilt encoder with a cached date (``services/auditline.py``):
the text must be what ``json.dumps`` of the line with a ``datetime`` date writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from storage_proxy.services.auditline import dumps, iso_time

texts = st.text() | st.none()
values = texts | st.integers() | st.floats(allow_nan=False, allow_infinity=False)


def reference(line: dict[str, Any]) -> str:
    dated = {
        **line,
        "time": datetime.fromtimestamp(line["time"], UTC).isoformat("T", "milliseconds"),
    }
    return json.dumps(dated, ensure_ascii=False, default=str)


@given(
    stamp=st.floats(min_value=0, max_value=4e9),
    path=texts,
    size=values,
    extra=st.dictionaries(st.text(max_size=8), values, max_size=3),
)
@example(stamp=1_700_000_000.9999996, path="\ud800", size=None, extra={})
@example(stamp=1_700_000_000.0005, path='é\u2028\x00"\\', size=2**70, extra={"k": 1.5})
def test_lines_are_what_json_dumps_writes(
    stamp: float, path: str | None, size: Any, extra: dict[str, Any]
) -> None:
    line = {
        "time": stamp,
        "request_id": "r",
        "path": path,
        "bytes": size,
        "labels": {"backend": "vfs"},
        **{f"x-{k}": v for k, v in extra.items()},
    }
    assert dumps(line) == reference(line)
    assert iso_time(stamp) == reference(line)[10:39]
