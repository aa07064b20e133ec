"""``generate()``: messages -> prompt ids -> engine -> exactly the engine's tokens, logprobs and routing.

``generate()`` checks and settles its arguments into one ``GenerateCall`` (``_call``) and hands it to
``_generate(http, transport, renderer, call)``, which renders, caps the prompt length (``http.server_info``),
sends through the transport (``_transports``) and parses the completion with the renderer. The package docstring
(``renderers.client``) lists the whole path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar

from renderers.client._call import GenerateCall, PromptIds, checked_prompt_ids
from renderers.client._http import HTTPClient, as_http_client
from renderers.client._retry import RetryPolicy, with_retries
from renderers.client._routed_experts import RoutedExperts
from renderers.client._transports import RendererTransport, Transport, get_transport
from renderers.errors import OverlongPromptError
from renderers.types import Message, ParsedResponse, ParsedToolCall, ToolCallParseStatus, ToolSpecLike

__all__ = ["GenerateResult", "generate"]

T = TypeVar("T")


class GenerateResult(TypedDict):
    """What ``generate()`` returns.

    ``completion_logprobs[i]`` is the logprob of ``completion_ids[i]`` (always the same length).
    ``routed_experts`` row 0 is sequence position ``routed_experts.start``. ``prompt_attribution`` is the
    ``RenderedTokens`` the prompt was rendered to, or the caller's ``prompt_attribution`` (the same object) when
    ``prompt_ids`` were given.
    """

    request_id: str
    prompt_ids: list[int]
    completion_ids: list[int]
    completion_logprobs: list[float]
    content: str
    reasoning_content: str | None
    tool_calls: list[ParsedToolCall]
    finish_reason: str | None
    routed_experts: RoutedExperts | None
    prompt_attribution: Any


def _is_pool(renderer: Any) -> bool:
    """A ``RendererPool`` (or anything pool-like with ``checkout``): its calls block, so they go to a thread."""
    return callable(getattr(renderer, "checkout", None))


async def _call(pooled: bool, fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn) if pooled else fn()


def _check_not_multimodal(renderer: Any, messages: Sequence[Message]) -> None:
    if getattr(renderer, "is_multimodal", False) is True:
        raise NotImplementedError(
            f"{type(renderer).__name__} is multimodal; multimodal input is not supported by this client "
            "(neither the vllm nor the dynamo transport serializes image/video features)"
        )
    for i, msg in enumerate(messages):
        content: Any = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind not in ("text", "thinking"):
                    raise NotImplementedError(
                        f"messages[{i}].content[{j}] has type {kind!r}: multimodal input is not supported by this "
                        "client's transports"
                    )


async def generate(
    *,
    client: Any,
    renderer: Any,
    messages: Sequence[Message],
    model: str,
    prompt_ids: PromptIds | None = None,
    prompt_attribution: Any = None,
    tools: Sequence[ToolSpecLike] | None = None,
    sampling_params: Mapping[str, Any] | None = None,
    transport: RendererTransport | str = "vllm",
    cache_salt: str | None = None,
    priority: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    max_prompt_len: int | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (per-request HTTP timeout)
    retries: int | RetryPolicy = 0,
) -> GenerateResult:
    """Render ``messages``, send the prompt ids to the engine, and return exactly what the engine produced.

    - ``client``: a ``renderers.EngineClient`` (fast, aiohttp), an ``httpx.AsyncClient`` or an
      ``openai.AsyncOpenAI``; a base URL with or without ``/v1``.
    - ``renderer``: a ``Renderer`` or a ``RendererPool`` (pool calls run in worker threads).
    - ``prompt_ids``: skip rendering and send these ids (ints, or an integer numpy array); ``prompt_attribution``
      is then passed through as is.
    - ``transport``: ``"vllm"`` (``/inference/v1/generate``) or ``"dynamo"`` (``/v1/chat/completions`` + nvext);
      ``"vllm_generate"``/``"dynamo_chat"`` are aliases. Unknown names raise ``ValueError`` before any work.
    - ``sampling_params``: forwarded; the renderer's stop ids become ``stop_token_ids``, ``logprobs=1`` is forced,
      ``skip_special_tokens`` defaults to ``False``. ``routed_experts_prompt_start`` asks for routing rows from
      that sequence position on (trimmed client-side when the server returned the full sequence).
    - ``priority``: one meaning whatever the transport, vLLM's: **lower runs first** (the Dynamo transport
      converts to Dynamo's higher-is-more-important ``nvext.agent_hints.priority`` by negating).
    - ``max_prompt_len``: pre-flight cap; when ``None`` it is discovered once per model from ``GET /v1/models``
      and kept on the client object (its ``ServerInfo``). A longer prompt raises ``OverlongPromptError`` before
      anything is sent.
    - ``timeout``: seconds for this request (``None``: the client's default), per attempt.
    - ``retries``: off by default. An int N sends the request again up to N times, with capped exponential
      backoff and jitter (``RetryPolicy(retries=N)``; pass a ``renderers.client.RetryPolicy`` to tune it),
      but only when the server certainly did not start generating: a refused connection, or a 429/503/529
      answer (its ``Retry-After`` is honoured, capped). A timeout, a reset, a truncated body or any other status
      is never retried, so a request is never run twice by the engine because of this setting.

    Errors: see ``renderers.errors``. Only ``ValueError``/``NotImplementedError`` (bad arguments), the error tree
    and ``asyncio.CancelledError`` can escape.
    """
    wire_transport = get_transport(transport)
    call = GenerateCall.from_arguments(
        model=model,
        messages=messages,
        prompt_ids=prompt_ids,
        prompt_attribution=prompt_attribution,
        tools=tools,
        sampling_params=sampling_params,
        cache_salt=cache_salt,
        priority=priority,
        extra_headers=extra_headers,
        max_prompt_len=max_prompt_len,
        timeout=timeout,
    )
    if tools and not renderer.supports_tools:
        raise ValueError(
            f"{type(renderer).__name__} does not support tools. Choose a model-specific renderer instead of the "
            "default fallback."
        )
    http = with_retries(as_http_client(client), retries)
    _check_not_multimodal(renderer, messages)
    gate = http.in_flight_gate()
    if gate is None:
        return await _generate(http, wire_transport, renderer, call)
    async with gate:
        return await _generate(http, wire_transport, renderer, call)


async def _generate(http: HTTPClient, wire_transport: Transport, renderer: Any, call: GenerateCall) -> GenerateResult:
    """Render (or check the caller's ids), apply the length cap, send, parse the completion with the renderer."""
    pooled = _is_pool(renderer)
    tools = call.tools

    def prepare() -> tuple[list[int], bytes | None, list[int], Any]:
        if call.prompt_ids is not None:
            checked, text = checked_prompt_ids(call.prompt_ids)
            return checked, text, list(renderer.get_stop_token_ids()), call.prompt_attribution
        rendered = renderer.render(call.messages, tools=tools, add_generation_prompt=True)
        if getattr(rendered, "multi_modal_data", None):
            raise NotImplementedError("the rendered prompt carries multimodal data; not supported by this client")
        return list(rendered.token_ids), None, list(renderer.get_stop_token_ids()), rendered

    ids, ids_json, stop_ids, attribution = await _call(pooled, prepare)

    cap = call.max_prompt_len
    if cap is None:
        cap = await http.server_info.context_len(http, call.model)
    if cap is not None and len(ids) > cap:
        raise OverlongPromptError(prompt_len=len(ids), max_prompt_len=cap)

    request = call.wire_request(ids, ids_json, stop_ids)
    wire = await wire_transport.send(http, request, headers=call.headers, timeout=call.timeout, max_prompt_len=cap)

    parsed: ParsedResponse = await _call(pooled, lambda: renderer.parse_response(wire.completion_ids, tools=tools))
    tool_calls = list(parsed.tool_calls)
    finish = wire.finish_reason
    if finish == "stop" and any(tc.status == ToolCallParseStatus.OK for tc in tool_calls):
        finish = "tool_calls"
    return GenerateResult(
        request_id=wire.request_id,
        prompt_ids=ids,
        completion_ids=wire.completion_ids,
        completion_logprobs=wire.completion_logprobs,
        content=parsed.content,
        reasoning_content=parsed.reasoning_content,
        tool_calls=tool_calls,
        finish_reason=finish,
        routed_experts=wire.routed_experts,
        prompt_attribution=attribution,
    )
