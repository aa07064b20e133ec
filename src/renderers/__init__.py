"""renderers: chat messages to token ids and back, and a tokens-in/tokens-out engine client."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    GenerateError,
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    OverlongPromptError,
    PartialCompletionError,
    RenderersError,
    ResponseError,
    RoutedExpertsError,
    TransportError,
)
from renderers.protocol import Renderer
from renderers.types import (
    Message,
    ParsedResponse,
    ParsedToolCall,
    RenderedTokens,
    ToolCall,
    ToolCallFunction,
    ToolCallParseStatus,
    ToolSpec,
)

if TYPE_CHECKING:
    from renderers.chat_template import ChatTemplateRenderer
    from renderers.client import (
        EngineClient,
        GenerateResult,
        RendererTransport,
        RetryPolicy,
        RoutedExperts,
        WireResult,
        generate,
    )
    from renderers.factory import create_renderer, create_renderer_pool, load_tokenizer
    from renderers.families.qwen3 import Qwen3Renderer
    from renderers.pool import RendererPool

__version__ = "0.2.0"

# Heavier parts (aiohttp/httpx for the client, tokenizers for the renderers) load on first use.
_LAZY: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ChatTemplateRenderer": "renderers.chat_template",
        "EngineClient": "renderers.client",
        "GenerateResult": "renderers.client",
        "Qwen3Renderer": "renderers.families.qwen3",
        "RendererPool": "renderers.pool",
        "RendererTransport": "renderers.client",
        "RetryPolicy": "renderers.client",
        "RoutedExperts": "renderers.client",
        "WireResult": "renderers.client",
        "create_renderer": "renderers.factory",
        "create_renderer_pool": "renderers.factory",
        "generate": "renderers.client",
        "load_tokenizer": "renderers.factory",
    }
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'renderers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ChatTemplateRenderer",
    "EngineClient",
    "EngineConnectionError",
    "EngineHTTPError",
    "EngineTimeoutError",
    "GenerateError",
    "GenerateResult",
    "LogprobMismatchError",
    "MalformedResponseError",
    "Message",
    "MissingCompletionIdsError",
    "OverlongPromptError",
    "ParsedResponse",
    "ParsedToolCall",
    "PartialCompletionError",
    "Qwen3Renderer",
    "RenderedTokens",
    "Renderer",
    "RendererPool",
    "RendererTransport",
    "RenderersError",
    "ResponseError",
    "RetryPolicy",
    "RoutedExperts",
    "RoutedExpertsError",
    "ToolCall",
    "ToolCallFunction",
    "ToolCallParseStatus",
    "ToolSpec",
    "TransportError",
    "WireResult",
    "__version__",
    "create_renderer",
    "create_renderer_pool",
    "generate",
    "load_tokenizer",
]
