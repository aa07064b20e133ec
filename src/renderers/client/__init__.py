"""Tokens-in/tokens-out engine client: ``generate()`` over vLLM's generate route or Dynamo's chat + nvext.

The public names are ``__all__``; every module of this package is private (``_``-prefixed) and may change.
A ``generate()`` call, module by module:

1. ``_generate``: ``generate()`` checks its arguments into one frozen ``GenerateCall`` (``_call``), picks the
   transport (``_transports``) and the ``HTTPClient`` (``_http``, wrapped by ``_retry`` when retries are on);
2. ``_generate._generate``: renders the messages (or checks the caller's ids, ``_call.checked_prompt_ids``),
   applies the context-length cap the client's ``ServerInfo`` knows (``_server_info``), and hands
   ``GenerateCall.wire_request(...)`` (a ``WireRequest``) to the transport;
3. ``_transports.base.Transport.send``: ``build_body`` (``_transports.vllm`` / ``_transports.dynamo``), POST through
   the ``HTTPClient`` (``_engine_client.EngineClient`` or an httpx/openai adapter), once more without a field the
   server refused (``resend_body``), non-2xx -> typed error (``_http_errors``), 2xx -> ``parse``;
4. ``_parse.parse_completion``: body splitting, fast path, checks, slow path -> ``WireResult`` (routing payloads:
   ``_routed_experts``);
5. back in ``_generate``: the renderer parses the completion ids; ``GenerateResult``.
"""

from __future__ import annotations

from renderers.client._engine_client import EngineClient
from renderers.client._generate import GenerateResult, generate
from renderers.client._parse import WireResult
from renderers.client._retry import RetryPolicy
from renderers.client._routed_experts import RoutedExperts
from renderers.client._transports import RendererTransport

__all__ = [
    "EngineClient",
    "GenerateResult",
    "RendererTransport",
    "RetryPolicy",
    "RoutedExperts",
    "WireResult",
    "generate",
]
