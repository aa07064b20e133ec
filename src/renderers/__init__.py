"""renderers: chat messages to token ids and back, and a tokens-in/tokens-out engine client."""

from __future__ import annotations

from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    GenerateError,
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    OverlongPromptError,
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

__version__ = "0.2.0"

__all__ = [
    "EngineConnectionError",
    "EngineHTTPError",
    "EngineTimeoutError",
    "GenerateError",
    "LogprobMismatchError",
    "MalformedResponseError",
    "Message",
    "MissingCompletionIdsError",
    "OverlongPromptError",
    "ParsedResponse",
    "ParsedToolCall",
    "RenderedTokens",
    "Renderer",
    "RenderersError",
    "ResponseError",
    "RoutedExpertsError",
    "ToolCall",
    "ToolCallFunction",
    "ToolCallParseStatus",
    "ToolSpec",
    "TransportError",
    "__version__",
]
