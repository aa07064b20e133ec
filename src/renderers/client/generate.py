"""``generate()``: messages -> prompt ids -> engine -> exactly the engine's tokens, logprobs and routing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypedDict, TypeVar

import orjson

from renderers.client.http import HTTPClient, RetryPolicy, as_http_client, with_retries
from renderers.client.limits import discover_max_prompt_len
from renderers.client.routed_experts import RoutedExperts
from renderers.client.transports import RendererTransport, Transport, WireRequest, get_transport
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


_ID_BYTES: Final = b"0123456789,"


def _prompt_id_error(ids: list[Any]) -> ValueError | None:
    for i, tok in enumerate(ids):
        if type(tok) is not int or tok < 0:
            return ValueError(f"prompt_ids[{i}] must be a non-negative int, got {tok!r}")
    return None


def checked_prompt_ids(prompt_ids: Sequence[int]) -> tuple[list[int], bytes | None]:
    """The caller's ids as a ``list[int]`` (every id a non-negative int), and their JSON text when it came for free.

    The check runs at C speed: orjson encodes the list (anything but ints, bools and enums fails or prints a
    ``-``, ``.``, ``"``, letter...), and the text must hold only digits and commas. Only when that fails does a
    Python loop look for the offending index to name it. (``IntEnum`` members are the one thing this accepts
    that the loop did not: they are sent as their int value.) The JSON text goes into the request body as is
    (``orjson.Fragment``), so the ids are encoded once. ``None`` when the fast check could not be used (ints
    beyond 64 bits: the body encoder then reports them).
    """
    tolist = getattr(prompt_ids, "tolist", None)
    ids = tolist() if callable(tolist) else list(prompt_ids)
    try:
        text = orjson.dumps(ids, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:
        text = None
    if text is not None and text.translate(None, _ID_BYTES) != b"[]":
        text = None
    if text is None:
        err = _prompt_id_error(ids)
        if err is not None:
            raise err
    return ids, text


def _prompt_id_list(prompt_ids: Sequence[int]) -> list[int]:
    return checked_prompt_ids(prompt_ids)[0]


#: ``priority`` must fit a signed 32-bit int once negated (Dynamo's ``agent_hints.priority`` is an i32), and the
#: same bound applies on every transport so one priority gives one outcome whichever carries it.
PRIORITY_BOUND = 2**31 - 1


def _optional_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


async def generate(
    *,
    client: Any,
    renderer: Any,
    messages: Sequence[Message],
    model: str,
    prompt_ids: Sequence[int] | None = None,
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
    - ``prompt_ids``: skip rendering and send these ids; ``prompt_attribution`` is then passed through as is.
    - ``transport``: ``"vllm"`` (``/inference/v1/generate``) or ``"dynamo"`` (``/v1/chat/completions`` + nvext);
      ``"vllm_generate"``/``"dynamo_chat"`` are aliases. Unknown names raise ``ValueError`` before any work.
    - ``sampling_params``: forwarded; the renderer's stop ids become ``stop_token_ids``, ``logprobs=1`` is forced,
      ``skip_special_tokens`` defaults to ``False``. ``routed_experts_prompt_start`` asks for routing rows from
      that sequence position on (trimmed client-side when the server returned the full sequence).
    - ``priority``: one meaning whatever the transport, vLLM's: **lower runs first** (the Dynamo transport
      converts to Dynamo's higher-is-more-important ``nvext.agent_hints.priority`` by negating).
    - ``max_prompt_len``: pre-flight cap; when ``None`` it is discovered once per (server, model) from
      ``GET /v1/models``. A longer prompt raises ``OverlongPromptError`` before anything is sent.
    - ``timeout``: seconds for this request (``None``: the client's default), per attempt.
    - ``retries``: off by default. An int N sends the request again up to N times, with capped exponential
      backoff and jitter (``RetryPolicy(retries=N)``; pass a ``renderers.client.http.RetryPolicy`` to tune it),
      but only when the server certainly did not start generating: a refused connection, or a 429/503/529
      answer (its ``Retry-After`` is honoured, capped). A timeout, a reset, a truncated body or any other status
      is never retried, so a request is never run twice by the engine because of this setting.

    Errors: see ``renderers.errors``. Only ``ValueError``/``NotImplementedError`` (bad arguments), the error tree
    and ``asyncio.CancelledError`` can escape.
    """
    wire_transport = get_transport(transport)
    sp: dict[str, Any]
    if sampling_params is None:
        sp = {}
    elif isinstance(sampling_params, Mapping):
        sp = dict(sampling_params)
    else:
        raise ValueError(f"sampling_params must be a mapping, got {type(sampling_params).__name__}")
    priority = _optional_int(
        "priority",
        priority if priority is not None else sp.get("priority"),
        minimum=-PRIORITY_BOUND,
        maximum=PRIORITY_BOUND,
    )
    prompt_start = _optional_int(
        "sampling_params['routed_experts_prompt_start']", sp.get("routed_experts_prompt_start"), minimum=0
    )
    if cache_salt is None and sp.get("cache_salt") is not None:
        cache_salt = sp["cache_salt"]
    if cache_salt is not None and not isinstance(cache_salt, str):
        raise ValueError(f"cache_salt must be a string, got {cache_salt!r}")
    if max_prompt_len is not None:
        max_prompt_len = _optional_int("max_prompt_len", max_prompt_len, minimum=1)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if tools and not renderer.supports_tools:
        raise ValueError(
            f"{type(renderer).__name__} does not support tools. Choose a model-specific renderer instead of the "
            "default fallback."
        )
    http = with_retries(as_http_client(client), retries)
    _check_not_multimodal(renderer, messages)
    gate = http.in_flight_gate()
    args = (http, wire_transport, renderer, messages, model, prompt_ids, prompt_attribution, tools, sp, cache_salt,
            priority, prompt_start, extra_headers, max_prompt_len, timeout)  # fmt: skip
    if gate is None:
        return await _generate(*args)
    async with gate:
        return await _generate(*args)


async def _generate(
    http: HTTPClient,
    wire_transport: Transport,
    renderer: Any,
    messages: Sequence[Message],
    model: str,
    prompt_ids: Sequence[int] | None,
    prompt_attribution: Any,
    tools: Sequence[ToolSpecLike] | None,
    sp: dict[str, Any],
    cache_salt: str | None,
    priority: int | None,
    prompt_start: int | None,
    extra_headers: Mapping[str, str] | None,
    max_prompt_len: int | None,
    timeout: float | None,  # noqa: ASYNC109
) -> GenerateResult:
    pooled = _is_pool(renderer)

    def prepare() -> tuple[list[int], bytes | None, list[int], Any]:
        if prompt_ids is not None:
            checked, text = checked_prompt_ids(prompt_ids)
            return checked, text, list(renderer.get_stop_token_ids()), prompt_attribution
        rendered = renderer.render(messages, tools=tools, add_generation_prompt=True)
        if getattr(rendered, "multi_modal_data", None):
            raise NotImplementedError("the rendered prompt carries multimodal data; not supported by this client")
        return list(rendered.token_ids), None, list(renderer.get_stop_token_ids()), rendered

    ids, ids_json, stop_ids, attribution = await _call(pooled, prepare)

    cap = max_prompt_len if max_prompt_len is not None else await discover_max_prompt_len(http, model)
    if cap is not None and len(ids) > cap:
        raise OverlongPromptError(prompt_len=len(ids), max_prompt_len=cap)

    sp["stop_token_ids"] = stop_ids
    sp["logprobs"] = 1
    sp.setdefault("skip_special_tokens", False)
    request = WireRequest(
        model=model,
        prompt_ids=ids,
        prompt_ids_json=ids_json,
        sampling_params=sp,
        cache_salt=cache_salt,
        priority=priority,
        prompt_start=prompt_start,
    )
    wire = await wire_transport.send(http, request, headers=extra_headers or None, timeout=timeout, max_prompt_len=cap)

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
