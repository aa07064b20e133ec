"""Tokens-in/tokens-out engine client: ``generate()`` over vLLM's generate route or Dynamo's chat + nvext.

Public names: ``generate``, ``GenerateResult``, ``EngineClient``, ``RoutedExperts``, ``RendererTransport``,
``WireResult``. Everything else lives in private-by-convention submodules.
"""

from __future__ import annotations

from renderers.client.engine_client import EngineClient
from renderers.client.generate import GenerateResult, generate
from renderers.client.routed_experts import RoutedExperts
from renderers.client.transports import RendererTransport
from renderers.client.wire import WireResult

__all__ = ["EngineClient", "GenerateResult", "RendererTransport", "RoutedExperts", "WireResult", "generate"]
