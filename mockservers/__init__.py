"""Mock vLLM and mock Dynamo servers that speak the real wire shapes, backed by one deterministic engine.

Written independently of ``renderers.client``: nothing here imports the client or its parsing code,
so that the conformance suite compares two sides that were each checked against real recordings.

Layout: ``config`` (every setting), ``faults`` (fault specs and the code applying them), ``app`` (the shared
application: middleware, journal, admin routes, binding), ``engine`` (the fake model), one package per server
(``vllm``, ``dynamo``: ``rules`` / ``responses`` / ``app``), ``server`` (``MockServer``, a background-thread handle),
``cli`` and ``pytest_plugin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockservers.config import MockConfig
    from mockservers.faults import FaultError, FaultSpec
    from mockservers.server import MockServer

__all__ = ["FaultError", "FaultSpec", "MockConfig", "MockServer"]

_HOMES = {
    "MockConfig": "mockservers.config",
    "FaultSpec": "mockservers.faults",
    "FaultError": "mockservers.faults",
    "MockServer": "mockservers.server",
}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (so ``import mockservers`` alone stays cheap)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'mockservers' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
