"""Dynamo 1.6.1 frontend request rules for ``/v1/chat/completions`` and ``/v1/completions``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mockservers.app import MockState
from mockservers.engine import SamplingParams
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




@dataclass(frozen=True)
class ParsedRequest:
    """A request the frontend accepts: the prompt ids, the request's ``nvext`` and the sampling parameters."""

    body: dict[str, Any]
    nvext: dict[str, Any]
    prompt: list[int]
    params: SamplingParams


def body_not_object(value: Any, target: str) -> RequestError:
    return _bad(
        f"Failed to deserialize the JSON body into the target type: invalid type: {_serde_desc(value)}, "
        f"expected struct {target}"
    )


def parse_chat(body: dict[str, Any], state: MockState) -> ParsedRequest:
    """Validate a ``/v1/chat/completions`` body; ``RequestError`` for one the real frontend refuses."""
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
    return ParsedRequest(body, nvext, prompt, _sampling(body, nvext, prompt, state))


def parse_completion(body: dict[str, Any], state: MockState) -> ParsedRequest:
    """Validate a ``/v1/completions`` body (the mock serves a string prompt or one list of ids, unstreamed)."""
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
        raise _bad(f"Validation: the mock accepts a string prompt or one list of token ids, got {raw_prompt!r}")
    if nvext.get("token_data") is not None:
        prompt = list(nvext["token_data"])
    return ParsedRequest(body, nvext, prompt, _sampling(body, nvext, prompt, state))
