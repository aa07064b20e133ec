"""Conformance checks users can run against their own servers: the same strategies and equivalence check the
project's suite runs against its mock vLLM and mock Dynamo.

- ``renderers.testing.strategies``: hypothesis strategies for ``generate()`` calls (needs the ``testing`` extra:
  ``pip install 'renderers[testing]'``).
- ``renderers.testing.equivalence``: run one case on both transports and compare the results (no hypothesis).
- ``renderers-conformance --vllm URL --dynamo URL --model NAME``: both together, a pass/fail table per property.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["require_hypothesis"]

HYPOTHESIS_MISSING = (
    "renderers.testing.strategies needs hypothesis, which is the optional extra `testing`: "
    "pip install 'renderers[testing]'"
)


def require_hypothesis() -> None:
    """Import hypothesis or raise ``ImportError`` naming the extra to install."""
    try:
        importlib.import_module("hypothesis")
    except ImportError as exc:
        raise ImportError(HYPOTHESIS_MISSING) from exc


def __getattr__(name: str) -> Any:
    if name in ("strategies", "equivalence", "cli"):
        return importlib.import_module(f"renderers.testing.{name}")
    raise AttributeError(f"module 'renderers.testing' has no attribute {name!r}")
