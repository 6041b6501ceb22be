"""The shape the code keeps: no module over 600 lines, no function over 80, in ``src/``; and no
handler in ``api/`` that reaches storage or the books except through a service."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "storage_proxy"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: What a door may not touch on anything: the volumes, the metadata store, quota models.
STORAGE_ATTRIBUTES = {"volumes", "metadata", "quota_model", "deps", "books"}


def test_no_module_or_function_is_too_long() -> None:
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(SRC)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    assert too_long == []


def test_doors_reach_storage_only_through_services() -> None:
    found = []
    for path in sorted((SRC / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in STORAGE_ATTRIBUTES:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module:
                target = node.module.lstrip(".").split(".")[0]
                if node.level >= 2 and target in {"volumes", "metadata", "infra", "context"}:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}")
    assert found == []
