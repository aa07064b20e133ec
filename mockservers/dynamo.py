"""Mock NVIDIA Dynamo 1.6.1 frontend: ``POST /v1/chat/completions`` with ``nvext``, ``POST /v1/completions``,
``GET /v1/models``, ``/health``, ``/live``, ``/metrics``.

Validation is as strict as 1.6.1: unknown top-level keys give 400 ``Validation: Unsupported parameter(s): ...``
(unless ``lax_validation``), unknown ``nvext`` keys give serde's ``unknown field`` 400, errors use the flat body
``{"message", "type", "code"}``. The worker behind the frontend is chosen by ``dynamo_backend``: ``vllm`` (the real
``dynamo.vllm`` worker: ``engine_data``, logprobs), ``mocker`` (no logprobs, no ``engine_data``) or ``sample``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from mockservers import routing
from mockservers.base import BODY_KEY, STATE, MockState, fault_of, json_response, make_app, read_body, simulate_latency
from mockservers.config import MockConfig
from mockservers.engine import Completion, SamplingParams, mix64
from mockservers.faults import FaultSpec
from mockservers.protocol import RequestError, context_error, ids_in_range, is_int, is_number

NVEXT_FIELDS_161 = (
    "greed_sampling",
    "use_raw_prompt",
    "annotations",
    "backend_instance_id",
    "token_data",
    "max_thinking_tokens",
    "cache_salt",
    "extra_fields",
    "metadata_upload",
    "prefill_worker_id",
    "decode_worker_id",
    "dp_rank",
    "prefill_dp_rank",
    "agent_hints",
    "request_timestamp_ms",
    "routing_constraints",
    "router",
)
NVEXT_FIELDS_TRIMMED = (*NVEXT_FIELDS_161, "routed_experts_prompt_start")

_OPENAI_COMMON = {
    "model", "frequency_penalty", "logit_bias", "max_tokens", "n", "presence_penalty", "seed", "stop", "stream",
    "stream_options", "temperature", "top_p", "user",
}  # fmt: skip
CHAT_FIELDS = _OPENAI_COMMON | {
    "messages", "store", "reasoning_effort", "metadata", "logprobs", "top_logprobs", "max_completion_tokens",
    "modalities", "prediction", "audio", "response_format", "service_tier", "tools", "tool_choice",
    "parallel_tool_calls", "function_call", "functions", "web_search_options",
}  # fmt: skip
COMPLETION_FIELDS = _OPENAI_COMMON | {"prompt", "suffix", "logprobs", "echo", "best_of"}
COMMON_EXT = {
    "ignore_eos", "min_tokens", "top_k", "min_p", "repetition_penalty", "include_stop_str_in_output",
    "skip_special_tokens", "guided_json", "guided_regex", "guided_grammar", "guided_choice",
    "guided_decoding_backend", "guided_whitespace_pattern", "prompt_logprobs",
}  # fmt: skip
DYNAMO_EXT = {"nvext", "chat_template_args", "chat_template_kwargs", "thinking", "media_io_kwargs"}
DYNAMO_EXT |= {"return_tokens_as_token_ids", "add_generation_prompt", "continue_final_message"}
# Accepted and dropped by the real 1.6.1 frontend (checked against it by tests/real).
IGNORED_FIELDS = {"prompt_cache_key"}
PASSTHROUGH = {"cache_salt", "stop_token_ids", "detokenize", "allowed_token_ids", "bad_words_token_ids"}
PASSTHROUGH |= {"logprob_token_ids"}
EXTRA_FIELDS = ("worker_id", "timing", "routed_experts", "engine_data", "completion_token_ids")

_REASONS = {499: "Client Closed Request", 529: "Overloaded"}


def dynamo_error(status: int, message: str, type_: str | None = None, param: str | None = None) -> web.Response:
    """Dynamo's flat error body: ``type`` is the HTTP reason phrase."""
    if type_ is None:
        try:
            type_ = _REASONS.get(status) or HTTPStatus(status).phrase
        except ValueError:
            type_ = "Error"
    return json_response(orjson.dumps({"message": message, "type": type_, "code": status}), status)


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


# ---- serde-flavoured type checks ----------------------------------------------------------------------------
def _serde_desc(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    return "sequence" if isinstance(value, list) else "map"


def _deser(path: str, detail: str) -> RequestError:
    return _bad(f"Failed to deserialize the JSON body into the target type: {path}: {detail}")


def _check(path: str, value: Any, expected: str) -> None:
    """Check one optional scalar like serde would (``None`` means absent)."""
    if value is None:
        return
    ok = {
        "bool": isinstance(value, bool),
        "u32": is_int(value) and 0 <= value < 2**32,
        "i32": is_int(value) and -(2**31) <= value < 2**31,
        "i64": is_int(value) and -(2**63) <= value < 2**63,
        "u64": is_int(value) and 0 <= value < 2**64,
        "u8": is_int(value) and 0 <= value < 256,
        "f32": is_number(value),
        "string": isinstance(value, str),
    }[expected]
    if ok:
        return
    if is_int(value) and expected[0] in "ui":
        raise _deser(path, f"invalid value: {_serde_desc(value)}, expected {expected}")
    raise _deser(
        path, f"invalid type: {_serde_desc(value)}, expected {'a string' if expected == 'string' else expected}"
    )


def _check_ids(path: str, value: Any) -> list[int]:
    if not isinstance(value, list):
        raise _deser(path, f"invalid type: {_serde_desc(value)}, expected a sequence")
    if ids_in_range(value, 2**32):
        return value
    for i, t in enumerate(value):
        _check(f"{path}[{i}]", t, "u32")
    return value


def _one_of(names: Iterable[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return "one of " + ", ".join(quoted)


def parse_nvext(raw: Any, state: MockState) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _deser("nvext", f"invalid type: {_serde_desc(raw)}, expected struct NvExt")
    allowed = NVEXT_FIELDS_TRIMMED if state.config.routed_experts_mode == "trimmed" else NVEXT_FIELDS_161
    for key in raw:
        if key not in allowed:
            # serde's text for #[serde(deny_unknown_fields)], as axum's Json extractor reports it.
            raise _bad(
                f"Failed to deserialize the JSON body into the target type: unknown field `{key}`, "
                f"expected {_one_of(allowed)}"
            )
    if raw.get("token_data") is not None:
        _check_ids("nvext.token_data", raw["token_data"])
    extra = raw.get("extra_fields")
    if extra is not None and (not isinstance(extra, list) or not all(isinstance(x, str) for x in extra)):
        raise _deser("nvext.extra_fields", f"invalid type: {_serde_desc(extra)}, expected a sequence of strings")
    _check("nvext.greed_sampling", raw.get("greed_sampling"), "bool")
    _check("nvext.routed_experts_prompt_start", raw.get("routed_experts_prompt_start"), "u32")
    for key in ("backend_instance_id", "prefill_worker_id", "decode_worker_id"):
        _check(f"nvext.{key}", raw.get(key), "u64")
    for key in ("dp_rank", "prefill_dp_rank", "max_thinking_tokens"):
        _check(f"nvext.{key}", raw.get(key), "u32")
    _check("nvext.cache_salt", raw.get("cache_salt"), "string")
    return raw


def _validate_fields(body: dict[str, Any], known: set[str], state: MockState) -> None:
    unknown = sorted(
        k for k in body if k not in known and k not in COMMON_EXT and k not in DYNAMO_EXT and k not in IGNORED_FIELDS
    )
    unknown = [k for k in unknown if k not in PASSTHROUGH]
    if unknown and not state.config.lax_validation:
        raise _bad("Validation: Unsupported parameter(s): " + ", ".join(f"`{k}`" for k in unknown))
    if "cache_salt" in body and body["cache_salt"] is not None and not isinstance(body["cache_salt"], str):
        raise _bad("Validation: `cache_salt` must be a string")


def _common_checks(body: dict[str, Any]) -> None:
    for key, kind in (
        ("max_tokens", "u32"),
        ("max_completion_tokens", "u32"),
        ("n", "u8"),
        ("seed", "i64"),
        ("temperature", "f32"),
        ("top_p", "f32"),
        ("top_k", "i32"),
        ("min_tokens", "u32"),
        ("ignore_eos", "bool"),
        ("stream", "bool"),
        ("skip_special_tokens", "bool"),
        ("return_tokens_as_token_ids", "bool"),
        ("add_generation_prompt", "bool"),
        ("continue_final_message", "bool"),
        ("prompt_logprobs", "u32"),
    ):
        _check(key, body.get(key), kind)
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) == 0:
            # The real 1.6.1 text for max_tokens; assumed the same for max_completion_tokens (not recorded).
            raise _bad(f"Validation: Max tokens must be greater than 0, got {body[key]}")
    if isinstance(body.get("stop"), list) and not body["stop"]:
        raise _bad("Validation: Stop sequences array cannot be empty")
    if body.get("stop_token_ids") is not None:
        _check_ids("stop_token_ids", body["stop_token_ids"])
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise _bad(f"Validation: Temperature must be between 0 and 2, got {temperature}")
    top_p = body.get("top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise _bad(f"Validation: Top_p must be between 0 and 1, got {top_p}")
    if body.get("n") not in (None, 1):
        raise _bad("Validation: the mock serves n=1 only")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise _bad("Validation: stream_options can only be used when stream is true")


def _check_model(body: dict[str, Any], state: MockState) -> None:
    if body.get("model") != state.config.model:
        raise RequestError(404, "Model not found")


def _flatten_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise _deser("messages", f"invalid type: {_serde_desc(content)}, expected a string or an array of content parts")


def _prompt_from_messages(body: dict[str, Any], state: MockState) -> list[int]:
    messages = []
    for i, m in enumerate(body["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _deser(f"messages[{i}]", "missing field `role`")
        messages.append({**m, "content": _flatten_content(m.get("content"))})
    return state.tokenizer.apply_chat_template(messages, body.get("tools"))


def _sampling(body: dict[str, Any], nvext: dict[str, Any], prompt: list[int], state: MockState) -> SamplingParams:
    vocab = state.tokenizer.vocab_size
    if not prompt:
        raise _bad("The decoder prompt cannot be empty")
    for t in () if ids_in_range(prompt, vocab) else prompt:
        if t >= vocab:
            raise _bad(f"Token id {t} is out of vocabulary")
    room = state.max_model_len - len(prompt)
    if room < 1:
        raise _bad(context_error(len(prompt), state.max_model_len))
    asked = body.get("max_completion_tokens")
    if asked is None:
        asked = body.get("max_tokens")
    budget = min(asked if asked is not None else room, room)
    if budget < 1:
        raise _bad("Validation: max_tokens must be at least 1")
    temperature = float(body["temperature"]) if body.get("temperature") is not None else 1.0
    if nvext.get("greed_sampling") is True:
        temperature = 0.0
    seed = body.get("seed")
    return SamplingParams(
        max_tokens=budget,
        temperature=temperature,
        top_p=float(body["top_p"]) if body.get("top_p") is not None else 1.0,
        top_k=max(int(body.get("top_k") or 0), 0),
        seed=seed if seed is not None else state.config.seed,
        min_tokens=min(int(body.get("min_tokens") or 0), budget),
        stop_token_ids=frozenset(body.get("stop_token_ids") or ()),
        ignore_eos=body.get("ignore_eos") is True,
    )


# ---- response pieces ------------------------------------------------------------------------------------
def _f32_repr(value: float) -> float:
    """The double a client reads when the frontend prints a float32 with its shortest representation."""
    return float(str(np.float32(value)))


def _chat_logprobs(state: MockState, c: Completion, n_top: int, as_ids: bool) -> dict[str, Any]:
    tok, eng = state.tokenizer, state.engine
    conv = _f32_repr if state.config.choice_logprobs_f32 else float
    content = []

    def name(t: int) -> str:
        return f"token_id:{t}" if as_ids else tok.piece(t)

    for i, tid in enumerate(c.token_ids):
        sampled_rank = c.ranks[i]
        tops = [(tid, c.logprobs[i])] if n_top > 0 else []  # top_logprobs 0: an empty list (1.6.1)
        if n_top > 0:
            tops += [(t, v) for t, v, r in eng.candidates(c.keys[i], c.peaks[i], n_top) if r != sampled_rank]
        text = name(tid)
        # The token a request stopped on (EOS or a stop id) is echoed without its text by the 1.6.1 frontend
        # (token "", bytes null), and left out of the message text (checked against the real frontend by
        # tests/real/test_dynamo_worker_differential.py).
        hidden = i == len(c.token_ids) - 1 and c.finish_reason == "stop"
        content.append(
            {
                "token": "" if hidden else text,
                "logprob": conv(c.logprobs[i]),
                "token_id": tid,
                "bytes": None if hidden else list(text.encode()),
                "top_logprobs": [
                    {"token": name(t), "logprob": conv(v), "bytes": list(name(t).encode())} for t, v in tops
                ],
            }
        )
    return {"content": content, "refusal": None}


def _shown_ids(c: Completion) -> list[int]:
    """The ids whose text the chat message shows: all but the stop token a request ended on (1.6.1)."""
    return c.token_ids[:-1] if c.finish_reason == "stop" and c.token_ids else c.token_ids


def _worker_id(state: MockState) -> int:
    return mix64(state.config.seed ^ 0x5EED) | (1 << 63)


def _nvext(
    state: MockState,
    extra: list[str],
    prompt: list[int],
    c: Completion,
    with_logprobs: bool,
    routed: dict[str, Any] | None,
    fault: FaultSpec,
    t0: float,
    t_first: float,
) -> dict[str, Any] | None:
    backend = state.config.dynamo_backend
    out: dict[str, Any] = {}
    if "worker_id" in extra:
        wid = _worker_id(state)
        out["worker_id"] = {"prefill_worker_id": wid, "decode_worker_id": wid}
    if "timing" in extra:
        now = time.time()
        out["timing"] = {
            "request_received_ms": int(t0 * 1000),
            "prefill_wait_time_ms": 0.0,
            "prefill_time_ms": round((t_first - t0) * 1000, 6),
            "ttft_ms": round((t_first - t0) * 1000, 6),
            "total_time_ms": round((now - t0) * 1000, 6),
        }
    if "routed_experts" in extra and routed is not None and backend == "vllm":
        out["routed_experts"] = routed
    if "engine_data" in extra and backend == "vllm":
        # After a migration (fault ``migrated_after``) the frontend returns the last worker's engine_data: its
        # prompt is the original one plus the tokens generated before, its ids and logprobs are the rest.
        cut = min(fault.migrated_after or 0, len(c.token_ids))
        last_prompt = [*prompt, *c.token_ids[:cut]] if cut else prompt
        engine: dict[str, Any] = {
            "prompt_token_ids": last_prompt,
            "kv_cache_hit": {"prompt_tokens": len(last_prompt), "reused_tokens": 0},
            "completion_token_ids": c.token_ids[cut:],
            "finished": True,
        }
        if with_logprobs and fault.logprobs != "chat-only":
            logprobs = c.logprobs[cut:]
            engine["completion_logprobs"] = logprobs[:-1] if fault.logprobs == "mismatch" else logprobs
        if routed is not None:
            engine["routed_experts"] = routed
        _ids_fault(engine, fault)
        out["engine_data"] = engine
    if "completion_token_ids" in extra:
        out["completion_token_ids"] = c.token_ids
        _ids_fault(out, fault)
    return out or None


def _ids_fault(obj: dict[str, Any], fault: FaultSpec) -> None:
    if fault.completion_ids == "empty":
        obj["completion_token_ids"] = []
        if "completion_logprobs" in obj:
            obj["completion_logprobs"] = []  # an empty completion has no logprobs either
    elif fault.completion_ids == "missing":
        obj.pop("completion_token_ids", None)


def _routing(state: MockState, nvext: dict[str, Any], ids: list[int]) -> tuple[dict[str, Any] | None, bytes | None]:
    cfg = state.config
    if not cfg.moe_layers or cfg.routed_experts_mode == "absent" or cfg.dynamo_backend != "vllm":
        return None, None
    start = int(nvext.get("routed_experts_prompt_start") or 0) if cfg.routed_experts_mode == "trimmed" else 0
    arr = state.engine.routed_experts(ids, start, cfg.moe_layers, cfg.moe_top_k, cfg.num_experts)
    return routing.routed_object(arr, min(start, max(len(ids) - 1, 0))), routing.raw_base64(arr)


def _usage(state: MockState, prompt_len: int, n_out: int, completions: bool = False) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_len,
        "completion_tokens": n_out,
        "total_tokens": prompt_len + n_out,
    }
    if state.config.dynamo_backend != "sample":
        details: dict[str, Any] = {"audio_tokens": None, "cached_tokens": 0} if completions else {"cached_tokens": 0}
        usage["prompt_tokens_details"] = details
    return usage


def _chat_usage(state: MockState, prompt_len: int, c: Completion, fault: FaultSpec) -> dict[str, Any]:
    """``usage`` of a chat answer: an emptied completion (fault) counts no tokens; after a migration
    (``migrated_after``) the prompt count is the last worker's prompt, the completion count all tokens."""
    if fault.completion_ids == "empty":
        return _usage(state, prompt_len, 0)
    cut = min(fault.migrated_after or 0, len(c.token_ids))
    return _usage(state, prompt_len + cut, len(c.token_ids))


async def _parse_json(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return dynamo_error(415, "Expected request with `Content-Type: application/json`", "Unsupported Media Type")
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return dynamo_error(400, f"Failed to parse the request body as JSON: {exc}")
    request[BODY_KEY] = body
    if not isinstance(body, dict):
        return dynamo_error(
            400,
            f"Failed to deserialize the JSON body into the target type: invalid type: {_serde_desc(body)}, "
            "expected struct NvCreateChatCompletionRequest",
        )
    return body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    t0 = time.time()
    body = await _parse_json(request)
    if isinstance(body, web.Response):
        return body
    try:
        if "model" not in body:
            raise _deser("model", "missing field `model`")
        _check("model", body.get("model"), "string")
        if "messages" not in body:
            raise _deser("messages", "missing field `messages`")
        if not isinstance(body["messages"], list):
            raise _deser("messages", f"invalid type: {_serde_desc(body['messages'])}, expected a sequence")
        nvext = parse_nvext(body.get("nvext"), state)
        _check("logprobs", body.get("logprobs"), "bool")
        _check("top_logprobs", body.get("top_logprobs"), "u8")
        _common_checks(body)
        _validate_fields(body, CHAT_FIELDS, state)
        if not body["messages"]:
            raise _bad("Validation: The 'messages' field cannot be empty. Please provide at least one message.")
        if (body.get("top_logprobs") or 0) > 20:
            raise _bad("Validation: Top_logprobs must be between 0 and 20")
        _check_model(body, state)
        token_data = nvext.get("token_data")
        prompt = list(token_data) if token_data is not None else _prompt_from_messages(body, state)
        params = _sampling(body, nvext, prompt, state)
    except RequestError as exc:
        return dynamo_error(exc.status, exc.message, exc.type)
    fault = fault_of(request)
    c = state.engine.generate(prompt, params)
    t_first = time.time()
    backend = state.config.dynamo_backend
    want_lp = body.get("logprobs") is True and backend != "mocker"
    skip = body.get("skip_special_tokens") is not False
    lp = None
    if want_lp and fault.logprobs != "engine-only":
        top = body.get("top_logprobs")
        lp = _chat_logprobs(state, c, 1 if top is None else int(top), body.get("return_tokens_as_token_ids") is True)
        if fault.logprobs == "mismatch" and lp["content"]:
            lp["content"] = lp["content"][:-1]
        if fault.completion_ids == "empty":
            lp["content"] = []
    routed, payload = _routing(state, nvext, [*prompt, *c.token_ids])
    extra = [x for x in (nvext.get("extra_fields") or []) if x in EXTRA_FIELDS]
    model = state.config.model
    rid = f"chatcmpl-{uuid.uuid4()}"
    created = int(time.time())
    if body.get("stream") is True:
        return await _stream_chat(request, state, body, rid, created, c, lp, skip, extra, prompt, routed, payload, t0)
    await simulate_latency(state.config, len(c.token_ids))
    resp: dict[str, Any] = {
        "id": rid,
        "choices": [
            {
                "index": 0,
                "message": {
                    # 1.6.1 sends null, not "", when the completion shows no text
                    "content": state.tokenizer.decode(_shown_ids(c), skip_special_tokens=skip) or None,
                    "refusal": None,
                    "role": "assistant",
                },
                "finish_reason": c.finish_reason,
                "logprobs": lp,
            }
        ],
        "created": created,
        "model": model,
        "object": "chat.completion",
        "usage": _chat_usage(state, len(prompt), c, fault),
    }
    nv = _nvext(state, extra, prompt, c, want_lp, routed, fault, t0, t_first)
    if nv is not None:
        resp["nvext"] = nv
    return json_response(routing.dumps(resp, payload))


async def _stream_chat(
    request: web.Request,
    state: MockState,
    body: dict[str, Any],
    rid: str,
    created: int,
    c: Completion,
    lp: dict[str, Any] | None,
    skip: bool,
    extra: list[str],
    prompt: list[int],
    routed: dict[str, Any] | None,
    payload: bytes | None,
    t0: float,
) -> web.StreamResponse:
    """SSE as the frontend sends it: one chunk per token; ``nvext`` and the finish reason on the last one."""
    cfg = state.config
    fault = fault_of(request)
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await out.prepare(request)
    head = {"id": rid}
    tail = {"created": created, "model": cfg.model, "object": "chat.completion.chunk"}
    text = ""
    mocker = cfg.dynamo_backend == "mocker"
    t_first = time.time()
    for i in range(len(c.token_ids)):
        await asyncio_sleep(cfg.ttft_s if i == 0 else cfg.per_token_s)
        if i == 0:
            t_first = time.time()
        new_text = state.tokenizer.decode(c.token_ids[: i + 1], skip_special_tokens=skip)
        delta: dict[str, Any] = {"content": new_text[len(text) :]}
        text = new_text
        if i == 0:
            delta["role"] = "assistant"
        last = i == len(c.token_ids) - 1
        chunk_lp = {"content": [lp["content"][i]], "refusal": None} if lp and i < len(lp["content"]) else None
        choice = {"index": 0, "delta": delta, "finish_reason": c.finish_reason if last and not mocker else None}
        choice["logprobs"] = chunk_lp
        chunk: dict[str, Any] = {**head, "choices": [choice], **tail}
        pay = None
        if last and not mocker:
            nv = _nvext(state, extra, prompt, c, lp is not None, routed, fault, t0, t_first)
            if nv is not None:
                chunk["nvext"] = nv
                pay = payload
        await out.write(b"data: " + routing.dumps(chunk, pay) + b"\n\n")
    if mocker:
        final = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": c.finish_reason, "logprobs": None}]}
        await out.write(b"data: " + orjson.dumps({**final, **tail}) + b"\n\n")
    if isinstance(body.get("stream_options"), dict) and body["stream_options"].get("include_usage") is True:
        usage = {**head, "choices": [], **tail, "usage": _usage(state, len(prompt), len(c.token_ids))}
        await out.write(b"data: " + orjson.dumps(usage) + b"\n\n")
    await out.write(b"data: [DONE]\n\n")
    await out.write_eof()
    return out


async def asyncio_sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def completions(request: web.Request) -> web.StreamResponse:
    """``/v1/completions`` (non-streaming): a string prompt or one list of token ids."""
    state = request.app[STATE]
    t0 = time.time()
    body = await _parse_json(request)
    if isinstance(body, web.Response):
        return body
    try:
        if "model" not in body:
            raise _deser("model", "missing field `model`")
        if "prompt" not in body:
            raise _deser("prompt", "missing field `prompt`")
        nvext = parse_nvext(body.get("nvext"), state)
        _check("logprobs", body.get("logprobs"), "u8")
        _common_checks(body)
        _validate_fields(body, COMPLETION_FIELDS, state)
        if body.get("stream") is True:
            raise RequestError(501, "the mock serves /v1/completions without streaming only", "Not Implemented")
        _check_model(body, state)
        raw_prompt = body["prompt"]
        if isinstance(raw_prompt, str):
            prompt = state.tokenizer.encode(raw_prompt)
        elif isinstance(raw_prompt, list) and all(is_int(t) for t in raw_prompt):
            prompt = _check_ids("prompt", raw_prompt)
        else:
            raise _bad("Validation: the mock accepts a string prompt or one list of token ids")
        if nvext.get("token_data") is not None:
            prompt = list(nvext["token_data"])
        params = _sampling(body, nvext, prompt, state)
    except RequestError as exc:
        return dynamo_error(exc.status, exc.message, exc.type)
    fault = fault_of(request)
    c = state.engine.generate(prompt, params)
    t_first = time.time()
    await simulate_latency(state.config, len(c.token_ids))
    backend = state.config.dynamo_backend
    n_lp = body.get("logprobs")
    choice: dict[str, Any] = {
        "text": state.tokenizer.decode(c.token_ids, skip_special_tokens=body.get("skip_special_tokens") is not False),
        "index": 0,
    }
    if n_lp is not None and backend != "mocker":
        tok = state.tokenizer
        tops = []
        for i, tid in enumerate(c.token_ids):
            entry = {tok.piece(t): v for t, v, r in state.engine.candidates(c.keys[i], c.peaks[i], int(n_lp))}
            entry.setdefault(tok.piece(tid), c.logprobs[i])
            tops.append(entry)
        choice["logprobs"] = {
            "tokens": [tok.piece(t) for t in c.token_ids],
            "token_logprobs": [_f32_repr(v) for v in c.logprobs],
            "top_logprobs": tops,
            "text_offset": [],
        }
    choice["finish_reason"] = c.finish_reason
    routed, payload = _routing(state, nvext, [*prompt, *c.token_ids])
    resp: dict[str, Any] = {
        "id": f"cmpl-{uuid.uuid4()}",
        "choices": [choice],
        "created": int(time.time()),
        "model": state.config.model,
        "system_fingerprint": None,
        "object": "text_completion",
        "usage": _usage(state, len(prompt), len(c.token_ids), completions=True),
    }
    extra = [x for x in (nvext.get("extra_fields") or []) if x in EXTRA_FIELDS]
    nv = _nvext(state, extra, prompt, c, n_lp is not None, routed, fault, t0, t_first)
    if nv is not None:
        resp["nvext"] = nv
    return json_response(routing.dumps(resp, payload))


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    card = {
        "id": state.config.model,
        "object": "model",
        "created": state.created,
        "owned_by": "nvidia",
        "context_window": state.max_model_len,
    }
    return json_response(orjson.dumps({"object": "list", "data": [card]}))


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wid = _worker_id(state)
    host, port = request.host.rsplit(":", 1) if ":" in request.host else (request.host, "0")
    instance = {
        "component": "backend",
        "endpoint": "generate",
        "namespace": "dynamo",
        "instance_id": wid,
        "transport": {"tcp": f"{host}:{port}/{wid:016x}/dynamo/backend/generate"},
        "device_type": "cpu",
        "request_plane_codec": "msgpack",
    }
    body = {"status": "healthy", "endpoints": ["dyn://dynamo.backend.generate"], "instances": [instance]}
    return json_response(orjson.dumps(body))


async def live(request: web.Request) -> web.Response:
    return json_response(b'{"status":"live","message":"Service is live"}')


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    lines = [
        "# HELP dynamo_frontend_requests_total Requests received by the mock frontend",
        "# TYPE dynamo_frontend_requests_total counter",
        f"dynamo_frontend_requests_total {state.counters.get('requests', 0)}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def create_app(config: MockConfig | None = None) -> web.Application:
    """The mock Dynamo frontend application."""
    return make_app(
        "dynamo",
        config or MockConfig(),
        dynamo_error,
        [
            web.post("/v1/chat/completions", chat_completions),
            web.post("/v1/completions", completions),
            web.get("/v1/models", models),
            web.get("/health", health),
            web.get("/live", live),
            web.get("/metrics", metrics),
        ],
    )
