"""Parsing of human-friendly sizes ("100g", "64Mi") and durations ("1d", "30m", "1h30m")."""

from __future__ import annotations

import re
from datetime import timedelta

import trafaret as t

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE | re.ASCII)
_SIZE_EXP = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE | re.ASCII)
#: Longer than anything a duration here means (and within what ``timedelta`` can hold).
MAX_DURATION = timedelta(days=36500)
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``100g``, ``1.5T``, ``64Mi`` (binary units)."""
    if isinstance(value, bool):
        raise ValueError("a size cannot be a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (expected e.g. 1048576, 512k, 100m, 1.5g)")
    number, unit, _ = m.groups()
    size = float(number) * (1024 ** _SIZE_EXP[unit.lower()])
    if size > 2**63:
        raise ValueError(f"not a size this daemon can hold: {value!r}")
    return int(size)


def parse_duration(value: int | float | str) -> timedelta:
    """A duration from seconds or a string such as ``30s``, ``15m``, ``1d``, ``1h30m``;
    negative, not-a-number and absurd (over a century) values are refused."""
    seconds = _duration_seconds(value)
    if not 0 <= seconds <= MAX_DURATION.total_seconds():  # also false for NaN
        raise ValueError(f"a duration must be between 0 and {MAX_DURATION.days} days: {value!r}")
    return timedelta(seconds=seconds)


def _duration_seconds(value: int | float | str) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration cannot be a boolean")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if text[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"not a duration: {value!r} (expected e.g. 30s, 15m, 1h30m, 1d)")
    return total


class _Converter(t.Trafaret):  # type: ignore[misc]
    def __init__(self, func, what: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self._func = func
        self._what = what

    def check_and_return(self, value):  # type: ignore[no-untyped-def]
        try:
            return self._func(value)
        except (TypeError, ValueError, OverflowError) as e:
            self._failure(f"expected {self._what}: {e}", value=value)


def BinarySize() -> t.Trafaret:  # noqa: N802 - reads like a trafaret type
    return _Converter(parse_size, "a size such as 1048576, 512k, 100m or 1.5g")


def Duration() -> t.Trafaret:  # noqa: N802
    return _Converter(parse_duration, "a duration such as 30s, 15m or 1d")
