"""Pieces both generated differential suites use: values of every JSON kind, a JSON writer that can repeat keys
and pretty-print, and the key structure of a response."""

from __future__ import annotations

import json
from typing import Any

WRONG = [
    None, True, False, 0, 1, -1, 2, 7, 20, 21, 128, 129, 255, 256, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1,
    2**32 - 1, 2**32, 2**63, 2**64 - 1, -(2**63), 1.5, 0.0, -0.0, 1e-7, 1e-50, 0.5, 2.0, 2.5, -2.5, 100.0, 1e39,
    1.0, "a", "", " ", "1", "a\"b\\c", [], [1], ["a"], [[1]], {}, {"a": 1},
]  # fmt: skip
"""Values of every JSON kind and across the integer widths and float ranges the servers check."""


def encode(value: Any, indent: str | None = None, level: int = 0) -> str:
    """JSON text; a list of pairs is an object (so a key may repeat); ``indent`` pretty-prints."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        items = [f"{json.dumps(k)}:{encode(v, indent, level + 1)}" for k, v in value]
        return _join("{", items, "}", indent, level)
    if isinstance(value, dict):
        return encode(list(value.items()), indent, level) if value else "{}"
    if isinstance(value, list):
        return _join("[", [encode(v, indent, level + 1) for v in value], "]", indent, level)
    return json.dumps(value, ensure_ascii=False)


def _join(open_: str, items: list[str], close: str, indent: str | None, level: int) -> str:
    if indent is None or not items:
        return open_ + ",".join(items) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + indent * level + close


def shape(value: Any) -> Any:
    """The key structure of a JSON value: objects by their keys (recursively), lists by the set of their items'
    shapes, scalars as their JSON kind."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", frozenset(shape(v) for v in value))
    return "null" if value is None else type(value).__name__
