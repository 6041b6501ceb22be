"""An audit line as JSON text, made cheaply (the writer's thread makes one per file operation).

``json.dumps`` with options builds an encoder per call, and each line's date was a ``datetime``;
on a busy node of small reads both showed in profiles.  Here the C encoder is made once and the
date text of the current second is reused: the same text as before, key for key.
"""

from __future__ import annotations

import json
import math
import time
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

_second: tuple[int, str] = (-1, "")
_ENCODE = (
    c_make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, True)
    if c_make_encoder is not None
    else None
)


def iso_time(stamp: float) -> str:
    """``datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")``."""
    global _second
    frac, whole = math.modf(stamp)  # rounded to microseconds as datetime rounds them
    seconds, rest = int(whole), round(frac * 1_000_000)
    if rest >= 1_000_000:
        seconds, rest = seconds + 1, rest - 1_000_000
    if _second[0] != seconds:
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{rest // 1000:03d}+00:00"


def dated(line: dict[str, Any]) -> dict[str, Any]:
    """The line as it is written: its time as an ISO 8601 date."""
    stamp = line["time"]
    if isinstance(stamp, float):
        return {**line, "time": iso_time(stamp)}
    return line


def dumps(line: dict[str, Any]) -> str:
    """``json.dumps(dated(line), ensure_ascii=False, default=str)``."""
    if _ENCODE is None:
        return json.dumps(dated(line), ensure_ascii=False, default=str)
    return "".join(_ENCODE(dated(line), 0))
