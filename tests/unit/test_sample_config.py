"""``configs/storage-proxy/sample.toml`` documents every key, and every key it shows is accepted.

The sample shows optional keys commented out (``# key = value`` under their table, or under a
commented ``# [table]``).  Those lines are uncommented for the check, so the file is read as an
operator would use it: every key in it must pass the daemon's schema (and each volume example
its backend's option schema, and the Delta view's keys its own), and every key the schemas know
must appear in it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import trafaret as t

from storage_proxy.config import config_schema, validate
from storage_proxy.deltaview import validate as validate_delta_view
from storage_proxy.volumes.registry import available_backends, load_backend

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "storage-proxy" / "sample.toml"
_COMMENTED = re.compile(r"^#\s?((?:\[[A-Za-z0-9_.-]+\])\s*(?:#.*)?|[A-Za-z0-9_-]+\s*=\s*.+)$")


def every_key_shown() -> dict[str, Any]:
    """The sample with its commented keys and tables uncommented (after the first table)."""
    lines, in_tables = [], False
    for line in SAMPLE.read_text().splitlines():
        in_tables = in_tables or line.startswith("[")
        m = _COMMENTED.match(line) if in_tables else None
        lines.append(m.group(1) if m else line)
    return tomllib.loads("\n".join(lines))


def schema_paths(trafaret: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Key paths a trafaret accepts; ``*`` stands for a name the operator chooses."""
    if isinstance(trafaret, t.Dict):
        found: set[tuple[str, ...]] = set()
        for key in trafaret.keys:
            path = (*prefix, key.name)
            found.add(path)
            found |= schema_paths(key.trafaret, path)
        return found
    if isinstance(trafaret, t.Or):
        return set().union(*(schema_paths(sub, prefix) for sub in trafaret.trafarets))
    if isinstance(trafaret, t.And):
        return schema_paths(trafaret.trafaret, prefix) | schema_paths(trafaret.other, prefix)
    if isinstance(trafaret, t.Mapping):
        return schema_paths(trafaret.value, (*prefix, "*"))
    return set()


def shown_paths(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, sub in value.items():
        found.add((*prefix, key))
        found |= shown_paths(sub, (*prefix, key))
    return found


def covered(path: tuple[str, ...], shown: set[tuple[str, ...]]) -> bool:
    return any(
        len(s) == len(path) and all(p in ("*", q) for p, q in zip(path, s, strict=True))
        for s in shown
    )


def test_every_key_in_the_sample_is_accepted() -> None:
    raw = every_key_shown()
    assert len(raw["volume"]) >= 6, "every backend's example is read"
    cfg = validate(raw, source=str(SAMPLE))  # raises ConfigError naming a bad key
    for name, volume in cfg["volume"].items():
        backend = load_backend(volume["backend"])
        backend.options_schema.check(volume["options"])  # raises DataError naming the key
        assert name
    validate_delta_view(cfg["delta-view"])


def test_every_schema_key_is_in_the_sample() -> None:
    shown = shown_paths(every_key_shown())
    missing = sorted(
        ".".join(path)
        for path in schema_paths(config_schema)
        if path[0] != "delta-view" and not covered(path, shown)
    )
    assert missing == [], f"keys of the schema the sample does not document: {missing}"


def test_every_backend_option_is_in_the_sample() -> None:
    examples = every_key_shown()["volume"]
    missing = []
    for name in available_backends():
        backend = load_backend(name)
        shown: set[str] = set()
        for example in examples.values():
            if example["backend"] == name:
                shown |= set(example.get("options", {}))
        keys = {key.name for key in getattr(backend.options_schema, "keys", [])}
        missing += [f"{name}: {key}" for key in sorted(keys - shown)]
        assert any(e["backend"] == name for e in examples.values()), f"no {name} example"
    assert missing == [], f"backend options the sample does not document: {missing}"


def test_the_sample_says_nothing_false_about_what_works() -> None:
    text = SAMPLE.read_text()
    assert "not used yet" not in text
    for key in ("num-proc", "internal-addr"):
        for line in text.splitlines():
            if key in line:
                assert "not used" not in line, line
