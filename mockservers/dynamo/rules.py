"""Dynamo 1.6.1 frontend request rules for ``POST /v1/chat/completions``, as tables a reader can check against the
source (``lib/llm/src/protocols/openai/chat_completions.rs``, ``common_ext.rs``, ``validate.rs``,
``protocols/common/extensions.rs``, the ``dynamo_protocols`` request types) and the real 1.6.1 frontend.

A body goes through the same four stages as in the frontend, and the first refusal wins:

1. **Deserialization** (``serde.py``; HTTP 400 ``Failed to deserialize the JSON body into the target type: ...``).
   ``NvCreateChatCompletionRequest`` has named fields (``NAMED_FIELDS``: typed while the body is read, errors point
   into the value) and flattens ``inner`` (``INNER_FIELDS``, the OpenAI request) and ``common`` (``COMMON_FIELDS``),
   which are buffered and typed after the closing ``}`` in that order (errors point at the end of the body); keys of
   neither land in ``unsupported_fields``. ``nvext`` is a ``deny_unknown_fields`` struct (``NVEXT_FIELDS``), and so
   are the structs inside it (``STRUCTS``); serde reads each from a map or, field by field, from a sequence.
2. **``stream_options``** without ``stream: true`` (the HTTP service's check, before ``validate``).
3. **``validate()``** (``VALIDATION``, in the order ``ValidateRequest::validate`` runs them; ``Validation: ...``).
4. **The model and the worker**: an unknown model is 404 ``Model not found``; ``continue_final_message`` with a final
   message without text is ``Invalid request``; so is a prompt id outside the vocabulary; then the mocker worker
   needs a token budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from mockservers.app import MockState
from mockservers.dynamo.serde import (
    Member,
    Scanner,
    SerdeError,
    invalid_type,
    location,
    one_of,
    rust_debug_float,
    rust_debug_str,
    rust_f32,
    serde_f64,
    to_f32,
)
from mockservers.engine import SamplingParams, mix64
from mockservers.protocol import RequestError, context_error, ids_in_range, is_int

DESERIALIZE = "Failed to deserialize the JSON body into the target type: "

# ---- 1. deserialization: field -> serde type ------------------------------------------------------------------
# A type is a name: "bool", "u8", "u32", "u64", "i32", "i64", "f32", "f64", "string", "value" (anything), "map"
# (HashMap<String, Value>), "seq:<type>" (Vec), or one of the named shapes checked in ``_check`` (``TYPES``).
REQUIRED = ("messages", "model")
"""Required fields of the OpenAI request, in declaration order (the order serde reports them missing)."""

INNER_FIELDS: dict[str, str] = {
    "messages": "messages",
    "model": "string",
    "store": "bool",
    "reasoning_effort": "enum:reasoning_effort",
    "metadata": "value",
    "frequency_penalty": "f32",
    "logit_bias": "map",
    "logprobs": "bool",
    "top_logprobs": "u8",
    "max_tokens": "u32",
    "max_completion_tokens": "u32",
    "n": "u8",
    "modalities": "seq:enum:modality",
    "prediction": "prediction",
    "audio": "struct:ChatCompletionAudio",
    "presence_penalty": "f32",
    "response_format": "response_format",
    "seed": "i64",
    "service_tier": "enum:service_tier",
    "stop": "stop",
    "stream": "bool",
    "stream_options": "stream_options",
    "temperature": "f32",
    "top_p": "f32",
    "tools": "seq:struct:ChatCompletionTool",
    "tool_choice": "tool_choice",
    "parallel_tool_calls": "bool",
    "user": "string",
    "function_call": "function_call",
    "functions": "seq:struct:ChatCompletionFunctions",
    "web_search_options": "struct:WebSearchOptions",
    "prompt_cache_key": "string",
}
"""``dynamo_protocols::types::CreateChatCompletionRequest`` (flattened as ``inner``)."""

COMMON_FIELDS: dict[str, str] = {
    "ignore_eos": "bool",
    "min_tokens": "u32",
    "top_k": "i32",
    "min_p": "f32",
    "repetition_penalty": "f32",
    "include_stop_str_in_output": "bool",
    "skip_special_tokens": "bool",
    "guided_json": "value",
    "guided_regex": "string",
    "guided_grammar": "string",
    "guided_choice": "seq:string",
    "guided_decoding_backend": "string",
    "guided_whitespace_pattern": "string",
    "prompt_logprobs": "u32",
    "add_generation_prompt": "bool",
    "continue_final_message": "bool",
    "mm_processor_kwargs": "value",
}
"""``CommonExt`` (flattened as ``common``): vLLM-style sampling knobs at the top level."""

NAMED_FIELDS: dict[str, str] = {
    "nvext": "nvext",
    "chat_template_args": "map",
    "thinking": "value",
    "media_io_kwargs": "value",
    "return_tokens_as_token_ids": "bool",
}
"""Fields of ``NvCreateChatCompletionRequest`` itself, typed while the body is read."""
ALIASES = {"chat_template_kwargs": "chat_template_args"}

NVEXT_FIELDS: dict[str, str] = {
    "greed_sampling": "bool",
    "use_raw_prompt": "bool",
    "annotations": "seq:string",
    "backend_instance_id": "u64",
    "token_data": "seq:u32",
    "max_thinking_tokens": "u32",
    "cache_salt": "string",
    "extra_fields": "seq:string",
    "metadata_upload": "metadata_upload",
    "prefill_worker_id": "u64",
    "decode_worker_id": "u64",
    "dp_rank": "u32",
    "prefill_dp_rank": "u32",
    "agent_hints": "agent_hints",
    "request_timestamp_ms": "f64",
    "routing_constraints": "routing_constraints",
    "router": "router",
}
"""``NvExt`` (``#[serde(deny_unknown_fields)]``), in declaration order (the order its unknown-field error lists)."""
NVEXT_TRIMMED = "routed_experts_prompt_start"
"""Accepted (u32) only by the ``trimmed`` mock mode, which models a frontend that honours it."""
AGENT_HINTS_FIELDS = {"priority": "i32", "strict_priority": "u32", "osl": "u32", "speculative_prefill": "bool"}
AGENT_HINTS_FIELDS |= {"latency_sensitivity": "f64"}
ROUTER_FIELDS = {"ttft_target": "f64", "itl_target": "f64"}


@dataclass(frozen=True)
class StructShape:
    """A struct as serde's derive reads it: from a map, key by key, or from a sequence, one element per field in
    declaration order (too few for a field without a default: ``invalid length``). Each value is typed as it is
    read. An ``nvext`` struct is ``deny_unknown_fields`` (unknown and repeated keys refused as they are read) and
    read straight from the body (more elements than fields: ``trailing characters``); a ``buffered`` one, of the
    flattened OpenAI request, ignores unknown keys and, from a sequence, needs every field and refuses more
    (``invalid length``, ``expected N elements in sequence``)."""

    name: str
    fields: dict[str, str]
    """Field -> kind, in declaration order."""
    required: tuple[str, ...] = ()
    """Fields without a default (every other field defaults when a map omits it or a sequence ends before it)."""
    not_null: tuple[str, ...] = ()
    """Fields that are not ``Option``s: ``null`` is refused."""
    buffered: bool = False

    def expecting(self) -> str:
        n = len(self.fields)
        return f"struct {self.name} with {n} element{'' if n == 1 else 's'}"


NVEXT = StructShape("NvExt", NVEXT_FIELDS)
NVEXT_WITH_TRIMMED = StructShape("NvExt", {**NVEXT_FIELDS, NVEXT_TRIMMED: "u32"})
STRUCTS: dict[str, StructShape] = {
    "agent_hints": StructShape("AgentHints", AGENT_HINTS_FIELDS),
    "router": StructShape("RouterParams", ROUTER_FIELDS),
    "metadata_upload": StructShape("MetadataUpload", {"url": "string"}, required=("url",), not_null=("url",)),
    "routing_constraints": StructShape(
        "RoutingConstraints",
        {"required_taints": "seq:string", "preferred_taints": "map:f32"},
        not_null=("required_taints", "preferred_taints"),
    ),
}
"""The structs inside ``NvExt``, by their kind in ``NVEXT_FIELDS`` (fields, defaults and types checked against the
real 1.6.1 frontend: every field is optional, ``MetadataUpload.url`` is a required string, ``RoutingConstraints``
holds a string list and a string -> f32 map, both defaulted but never null)."""

ENUMS: dict[str, tuple[str, ...]] = {
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "service_tier": ("auto", "default", "flex", "scale", "priority", "fast"),
    "modality": ("text", "audio"),
    "tool_type": ("function",),
    "audio_format": ("wav", "aac", "mp3", "flac", "opus", "pcm16"),
    "prediction": ("content",),
    "web_search_context_size": ("low", "medium", "high"),
    "web_search_location_type": ("approximate",),
}
ROLES = ("developer", "system", "user", "assistant", "tool", "function")
ROLE_REQUIRED = {
    "developer": ("content",),
    "system": ("content",),
    "user": ("content",),
    "assistant": (),
    "tool": ("content", "tool_call_id"),
    "function": ("content", "name"),
}
CONTENT_ENUMS = {
    "developer": "ChatCompletionRequestDeveloperMessageContent",
    "system": "ChatCompletionRequestSystemMessageContent",
    "user": "ChatCompletionRequestUserMessageContent",
    "assistant": "ChatCompletionRequestAssistantMessageContent",
    "tool": "ChatCompletionRequestToolMessageContent",
}
SYSTEM_WITHOUT_CONTENT = (
    "missing field `content`: a system message needs `content` unless it declares non-empty Kimi-style `tools`"
)
TOOL_CHOICES = ("none", "auto", "required")
PREDICTIONS = ENUMS["prediction"]
RESPONSE_FORMATS = ("text", "json_object", "json_schema")

BUFFERED_STRUCTS: dict[str, StructShape] = {
    "ChatCompletionTool": StructShape(
        "ChatCompletionTool",
        {"type": "enum:tool_type", "function": "struct:FunctionObject"},
        required=("type", "function"),
        not_null=("type", "function"),
        buffered=True,
    ),
    "FunctionObject": StructShape(
        "FunctionObject",
        {"name": "string", "description": "string", "parameters": "value", "strict": "bool"},
        required=("name",),
        not_null=("name",),
        buffered=True,
    ),
    "WebSearchOptions": StructShape(
        "WebSearchOptions",
        {"search_context_size": "enum:web_search_context_size", "user_location": "struct:WebSearchUserLocation"},
        buffered=True,
    ),
    "WebSearchUserLocation": StructShape(
        "WebSearchUserLocation",
        {"type": "enum:web_search_location_type", "approximate": "struct:WebSearchLocation"},
        required=("type", "approximate"),
        not_null=("type", "approximate"),
        buffered=True,
    ),
    "WebSearchLocation": StructShape(
        "WebSearchLocation",
        {"country": "string", "region": "string", "city": "string", "timezone": "string"},
        buffered=True,
    ),
    "ChatCompletionAudio": StructShape(
        "ChatCompletionAudio",
        {"voice": "audio_voice", "format": "enum:audio_format"},
        required=("voice", "format"),
        not_null=("voice", "format"),
        buffered=True,
    ),
    "ChatCompletionFunctions": StructShape(
        "ChatCompletionFunctions",
        {"name": "string", "description": "string", "parameters": "value"},
        required=("name", "parameters"),
        not_null=("name",),
        buffered=True,
    ),
}
"""Buffered structs of the OpenAI request read from a map or a sequence (``StructShape``); checked against the real
1.6.1 frontend."""
MAX_STOP_SEQUENCES = 32
INT_RANGES = {
    "u8": (0, 2**8),
    "u32": (0, 2**32),
    "u64": (0, 2**64),
    "i32": (-(2**31), 2**31),
    "i64": (-(2**63), 2**63),
}
SCALARS = ("bool", "string", "f32", "f64")
"""Kinds (with ``INT_RANGES``) that serde refuses a bracket for as soon as it peeks it."""
EXPECTING = {"bool": "a boolean", "string": "a string", "map": "a map", "f32": "f32", "f64": "f64"}

PASSTHROUGH: tuple[tuple[str, str, str], ...] = (
    ("cache_salt", "string", "`cache_salt` must be a string"),
    ("stop_token_ids", "seq:u32", "`stop_token_ids` must be an array of token IDs"),
    ("detokenize", "bool", "`detokenize` must be a boolean"),
    ("allowed_token_ids", "seq:u32", "`allowed_token_ids` must be an array of token IDs"),
    ("bad_words_token_ids", "seq:seq:u32", "`bad_words_token_ids` must be an array of token ID arrays"),
    ("logprob_token_ids", "seq:u32", "`logprob_token_ids` must be an array of token IDs"),
)
"""``PASSTHROUGH_EXTRA_FIELDS``: keys outside the request types that are still accepted, each checked (null passes)."""


class Refusal(Exception):
    """A deserialization error: serde's ``detail`` and where it is reported (``at`` a byte offset, or at the end of
    the body when ``at`` is None)."""

    def __init__(self, detail: str, at: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.at = at


def _int_ok(kind: str, value: Any) -> bool:
    low, high = INT_RANGES[kind]
    return is_int(value) and low <= value < high


def check(kind: str, value: Any) -> str | None:
    """serde's error for ``value`` read as an ``Option<kind>`` (None: accepted). A ``Refusal`` carries its own
    position (the named shapes that read field by field)."""
    if value is None:
        return None
    return check_present(kind, value)


def check_present(kind: str, value: Any) -> str | None:
    if kind == "value":
        return None
    if kind in INT_RANGES:
        if _int_ok(kind, value):
            return None
        if is_int(value) and -(2**63) <= value < 2**64:
            return f"invalid value: integer `{value}`, expected {kind}"
        return invalid_type(value, kind)
    if kind in ("f32", "f64"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else invalid_type(value, kind)
    if kind == "bool":
        return None if isinstance(value, bool) else invalid_type(value, "a boolean")
    if kind == "string":
        return None if isinstance(value, str) else invalid_type(value, "a string")
    if kind == "map":
        return None if isinstance(value, dict) else invalid_type(value, "a map")
    if kind.startswith("map:"):  # string keys, typed values (duplicate keys: the last wins, as in a HashMap)
        if not isinstance(value, dict):
            return invalid_type(value, "a map")
        return next((p for p in (check_present(kind[4:], v) for v in value.values()) if p), None)
    if kind.startswith("seq:"):
        if not isinstance(value, list):
            return invalid_type(value, "a sequence")
        inner = kind[4:]
        if inner == "u32" and ids_in_range(value, 2**32):
            return None
        for item in value:
            problem = check_present(inner, item)
            if problem:
                return problem
        return None
    if kind.startswith("enum:"):  # externally tagged, unit variants
        variants = ENUMS[kind[5:]]
        if isinstance(value, str):
            return variant(value, variants)[1]
        if not isinstance(value, dict):
            return invalid_type(value, "string or map")
        if len(value) != 1:
            return "invalid value: map, expected map with a single key"
        ((tag, content),) = value.items()
        return variant(tag, variants)[1] or (None if content is None else invalid_type(content, "unit"))
    if kind.startswith("struct:"):
        if kind[7:] in BUFFERED_STRUCTS and isinstance(value, list | dict):
            return _struct_problem(value, BUFFERED_STRUCTS[kind[7:]])
        return None if isinstance(value, dict) else invalid_type(value, f"struct {kind[7:]}")
    return SHAPES[kind](value)


def variant(tag: Any, variants: tuple[str, ...]) -> tuple[str | None, str | None]:
    """A tag read as serde reads an enum's variant identifier: a name, or an unsigned integer as the variant's index.
    Returns (the variant, the error)."""
    if isinstance(tag, str):
        if tag in variants:
            return tag, None
        return None, f"unknown variant `{tag}`, expected {one_of(variants)}"
    if is_int(tag) and 0 <= tag < 2**64:
        if tag < len(variants):
            return variants[tag], None
        return None, f"invalid value: integer `{tag}`, expected variant index 0 <= i < {len(variants)}"
    return None, invalid_type(tag, "variant identifier")


def _stop(value: Any) -> str | None:
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and (all(isinstance(s, str) for s in value) or (bool(value) and ids_in_range(value, 2**32)))
    )
    return None if ok else "data did not match any variant of untagged enum Stop"


def _stream_options(value: Any) -> str | None:
    """``{include_usage, continuous_usage_stats}``, both optional; a sequence is read positionally."""
    if isinstance(value, list):
        for item in value[:2]:
            problem = check("bool", item)
            if problem:
                return problem
        return f"invalid length {len(value)}, expected 2 elements in sequence" if len(value) > 2 else None
    if not isinstance(value, dict):
        return invalid_type(value, "struct ChatCompletionStreamOptions")
    fields = ("include_usage", "continuous_usage_stats")  # typed in the order the body gives them
    return next((p for p in (check("bool", v) for k, v in value.items() if k in fields) if p), None)


def _audio_voice(value: Any) -> str | None:
    """``ChatCompletionAudioVoice`` (untagged): a known voice or any other string."""
    return (
        None if isinstance(value, str) else "data did not match any variant of untagged enum ChatCompletionAudioVoice"
    )


def _prediction_content(content: Any) -> str | None:
    """``PredictionContentContent`` (untagged): a string, or parts that are maps with a string ``text`` (other keys,
    ``type`` included, ignored; parts written as sequences refused), as the real 1.6.1 frontend reads them."""
    parts_ok = isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("text"), str) for p in content
    )
    ok = isinstance(content, str) or parts_ok
    return None if ok else "data did not match any variant of untagged enum PredictionContentContent"


def _prediction(value: Any) -> str | None:
    """Adjacently tagged (``type`` + ``content``), one variant ``content``; a sequence is read as [tag, content]."""
    what = "adjacently tagged enum PredictionContent"
    if isinstance(value, list):
        if not value:
            return f"invalid length 0, expected {what}"
        problem = variant(value[0], PREDICTIONS)[1]
        if problem or len(value) < 2:
            return problem or f"invalid length 1, expected {what}"
        problem = _prediction_content(value[1])
        if problem or len(value) == 2:
            return problem
        return f"invalid length {len(value)}, expected 2 elements in sequence"
    if not isinstance(value, dict):
        return invalid_type(value, what)
    if "type" not in value:
        return "missing field `type`"
    # From a map, the tag is read as an enum from buffered content: a name or a one-key map, never an index.
    problem = check_present("enum:prediction", value["type"])
    if problem:
        return problem
    return _prediction_content(value["content"]) if "content" in value else "missing field `content`"


def _function_call(value: Any) -> str | None:
    ok = value in ("none", "auto") or (isinstance(value, dict) and isinstance(value.get("name"), str))
    return None if ok else "data did not match any variant of untagged enum ChatCompletionFunctionCall"


def _tool_choice(value: Any) -> str | None:
    """Untagged: ``none`` / ``auto`` / ``required``, or ``{"type": "function", "function": {"name": ...}}``."""
    function = value.get("function") if isinstance(value, dict) else None
    named = isinstance(function, dict) and isinstance(function.get("name"), str) and value.get("type") == "function"
    ok = value in TOOL_CHOICES or named
    return None if ok else "data did not match any variant of untagged enum ChatCompletionToolChoiceOption"


def _response_format(value: Any) -> str | None:
    """Internally tagged on ``type``; from a sequence, the first element is the tag."""
    if isinstance(value, list):
        if not value:
            return "missing field `type`"
        kind, problem = variant(value[0], RESPONSE_FORMATS)
        if problem:
            return problem
        if kind != "json_schema":  # a unit variant: the tag alone
            return f"invalid length {len(value) - 1}, expected 0 elements in sequence" if len(value) > 1 else None
        return "invalid length 1, expected struct variant ResponseFormat::JsonSchema with 1 element"
    if not isinstance(value, dict):
        return invalid_type(value, "internally tagged enum ResponseFormat")
    if "type" not in value:
        return "missing field `type`"
    kind, problem = variant(value["type"], RESPONSE_FORMATS)
    if problem:
        return problem
    if kind == "json_schema" and "json_schema" not in value:
        return "missing field `json_schema`"
    return None


def _text_parts(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
    )


def _messages(value: Any) -> str | None:
    """``Vec<ChatCompletionRequestMessage>``: an internally tagged enum on ``role`` (serde calls it ``Wire``)."""
    if not isinstance(value, list):
        return invalid_type(value, "a sequence")
    for message in value:
        if not isinstance(message, dict):
            return invalid_type(message, "internally tagged enum Wire")
        if "role" not in message:
            return "missing field `role`"
        role, problem = variant(message["role"], ROLES)
        if problem or role is None:
            return problem
        if role == "system" and message.get("content") is None:
            return SYSTEM_WITHOUT_CONTENT
        for name in ROLE_REQUIRED[role]:
            if name not in message:
                return f"missing field `{name}`"
        content = message.get("content")
        if role in CONTENT_ENUMS and not (
            isinstance(content, str) or _text_parts(content) or (content is None and role == "assistant")
        ):
            return f"data did not match any variant of untagged enum {CONTENT_ENUMS[role]}"
    return None


SHAPES: dict[str, Callable[[Any], str | None]] = {
    "stop": _stop,
    "stream_options": _stream_options,
    "tool_choice": _tool_choice,
    "response_format": _response_format,
    "messages": _messages,
    "audio_voice": _audio_voice,
    "prediction": _prediction,
    "function_call": _function_call,
}


# ---- the streamed part: named fields and nvext, with positions ------------------------------------------------
def _field_problem(shape: StructShape, key: str, item: Any) -> str | None:
    """serde's error for ``item`` as field ``key`` of ``shape`` (None: accepted); no positions."""
    kind = shape.fields[key]
    sub = STRUCTS.get(kind)
    if sub is not None:
        return None if item is None else _struct_problem(item, sub)
    return check_present(kind, item) if key in shape.not_null else check(kind, item)


def _struct_problem(value: Any, shape: StructShape) -> str | None:
    """serde's first error for ``value`` read as ``shape`` from a map or a sequence (None: accepted); no positions
    (the scanner places it: ``_scan_struct``, ``_scan_struct_seq``)."""
    names = list(shape.fields)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if i >= len(names):
                if shape.buffered:
                    return f"invalid length {len(value)}, expected {len(names)} elements in sequence"
                return "trailing characters"
            problem = _field_problem(shape, names[i], item)
            if problem:
                return problem
        required = names if shape.buffered else shape.required
        if any(name in required for name in names[len(value) :]):
            return f"invalid length {len(value)}, expected {shape.expecting()}"
        return None
    if not isinstance(value, dict):
        return invalid_type(value, f"struct {shape.name}")
    for key, item in value.items():
        if key not in shape.fields:
            if shape.buffered:
                continue
            return f"unknown field `{key}`, expected {one_of(tuple(names))}"
        problem = _field_problem(shape, key, item)
        if problem:
            return problem
    return next((f"missing field `{name}`" for name in shape.required if name not in value), None)


def as_map(value: Any, shape: StructShape) -> Any:
    """A struct accepted from a sequence as the map it stands for (field by position), nested structs included, so
    what reads the request afterwards sees one form."""
    if isinstance(value, list):
        value = dict(zip(shape.fields, value, strict=False))
    if isinstance(value, dict):
        for key, kind in shape.fields.items():
            sub = STRUCTS.get(kind)
            if sub is not None and isinstance(value.get(key), list | dict):
                value[key] = as_map(value[key], sub)
    return value


class _NeedSpans(Exception):
    """A streamed-field error whose byte position needs a scan of the body."""


def _raise_at(spans: list[Member] | None, i: int, where: str, detail: str) -> None:
    if spans is None:
        raise _NeedSpans
    member = spans[i]
    if where == "key":
        raise Refusal(detail, member.key_end)
    raise Refusal(detail, _value_error_at(member))


def _value_error_at(member: Member) -> int:
    """Where serde_json reports a value of the wrong type: after a scalar, before the opening bracket of a sequence
    or a map (serde_json peeks it and refuses without reading on)."""
    return member.start if isinstance(member.value, list | dict) else member.end


def read_streamed(raw: bytes, body: dict[str, Any] | None, state: MockState) -> Scanned | None:
    """The named fields in body order (``nvext`` field by field), as serde reads them; ``Refusal`` for the first
    error. ``body`` is orjson's parse (fast path, no positions): tried first. Otherwise (or to place an error) the
    body is scanned, syntax errors included, and its top-level members (duplicates kept) are returned."""
    nvext = nvext_shape(state)
    if body is not None:
        try:
            _streamed(body.items(), None, nvext)
            return None
        except _NeedSpans:
            pass
    scanner = Scanner(raw)
    top: list[Member] = []
    syntax: SerdeError | None = None
    trailing: SerdeError | None = None
    end = len(raw)
    try:
        c = scanner.skip_ws()
        if c == ord("["):
            raise Refusal(invalid_type([], "struct NvCreateChatCompletionRequest"), scanner.pos)
        if c != ord("{"):
            value = scanner.value()
            raise Refusal(invalid_type(value, "struct NvCreateChatCompletionRequest"), scanner.pos)
        for member in scanner.keys(top):
            if ALIASES.get(member.key, member.key) == "nvext":
                _scan_struct_value(scanner, nvext, member)
            else:
                member.value = scanner.value()
            member.end = scanner.pos
        end = scanner.pos
        try:
            scanner.end()
        except SerdeError as exc:
            trailing = exc  # reported after the buffered fields are typed
    except SerdeError as exc:
        syntax = exc
    try:
        _streamed(((m.key, m.value) for m in top), top, nvext)
    except Refusal as exc:
        if syntax is None or (exc.at is not None and exc.at <= syntax.pos):
            raise
    if syntax is not None:
        raise Refusal(syntax.detail, syntax.pos)
    return Scanned(top, trailing, end)


@dataclass(frozen=True)
class Scanned:
    """A body read by the scanner: its top-level members as sent, and a ``trailing characters`` error to report once
    the buffered fields are typed."""

    members: list[Member]
    trailing: SerdeError | None
    end: int
    """Where the top-level object ended (the buffered fields' errors are reported there)."""


def _scan_struct_value(scanner: Scanner, shape: StructShape, member: Member) -> None:
    """``member``'s value read as ``shape``: a map or a sequence read and typed as serde reads it (``children``: its
    members or elements, kept as they are read), anything else read whole (typed afterwards)."""
    c = scanner.skip_ws()
    if c == ord("{"):
        member.value, member.children = {}, []
        _scan_struct(scanner, member.children, shape)
        member.value = {m.key: m.value for m in member.children}
    elif c == ord("["):
        member.value, member.children = [], []
        _scan_struct_seq(scanner, member.children, shape)
        member.value = [m.value for m in member.children]
    else:
        member.value = scanner.value()


def _scan_field(scanner: Scanner, shape: StructShape, member: Member) -> None:
    """One field's value, typed as soon as it is read (the first bad element of a sequence or value of a map right
    after it; a nested struct member by member)."""
    kind = shape.fields[member.key]
    sub = STRUCTS.get(kind)
    c = scanner.skip_ws()
    if sub is not None:
        _scan_struct_value(scanner, sub, member)
        if isinstance(member.value, list | dict):
            return
    elif kind.startswith("seq:") and c == ord("["):
        member.value = _scan_typed(scanner, kind[4:], member, scanner.array)
    elif kind.startswith("map:") and c == ord("{"):
        member.value = _scan_typed(scanner, kind[4:], member, scanner.map_values)
    elif c is not None and c in b"[{" and (kind in INT_RANGES or kind in SCALARS):
        # A scalar field: serde peeks the bracket and refuses it without reading on.
        raise SerdeError(cast(str, check_present(kind, [] if c == ord("[") else {})), scanner.pos)
    else:
        member.value = scanner.value()
    problem = _field_problem(shape, member.key, member.value)
    if problem:
        raise SerdeError(problem, scanner.pos if not isinstance(member.value, list | dict) else member.start)


def _scan_struct(scanner: Scanner, children: list[Member], shape: StructShape) -> None:
    """A struct read from a map into ``children``, one member at a time: an unknown or repeated key is refused as
    soon as it is read, each value as soon as it is read, a missing required field after the closing brace."""
    seen: set[str] = set()

    def identify(member: Member) -> None:
        if member.key not in shape.fields:
            raise SerdeError(f"unknown field `{member.key}`, expected {one_of(tuple(shape.fields))}", member.key_end)
        if member.key in seen:
            raise SerdeError(f"duplicate field `{member.key}`", member.key_end)
        seen.add(member.key)

    for member in scanner.keys(children, identify):
        _scan_field(scanner, shape, member)
        member.end = scanner.pos
    missing = next((name for name in shape.required if name not in seen), None)
    if missing is not None:
        raise SerdeError(f"missing field `{missing}`", scanner.pos)


def _scan_struct_seq(scanner: Scanner, children: list[Member], shape: StructShape) -> None:
    """A struct read from a sequence into ``children``: element ``i`` is field ``i``, typed as soon as it is read;
    an element past the last field is ``trailing characters`` (where it starts), a sequence that ends before a
    required field is ``invalid length`` (after the closing bracket)."""
    names = list(shape.fields)

    def element(start: int) -> Any:
        if len(children) >= len(names):  # reported at the byte peeked (at the end of the body: where it ends)
            raise SerdeError("trailing characters", start + 1 if start < len(scanner.raw) else start)
        member = Member(names[len(children)], start, None, start, start)
        children.append(member)
        _scan_field(scanner, shape, member)
        member.end = scanner.pos
        return member.value

    scanner.sequence(element)
    if any(name in shape.required for name in names[len(children) :]):
        raise SerdeError(f"invalid length {len(children)}, expected {shape.expecting()}", scanner.pos)


def _scan_typed(scanner: Scanner, kind: str, member: Member, read: Callable[[Callable[[Any, int], None]], Any]) -> Any:
    """A sequence or a map whose items are typed as they are read: the first bad item is reported right after it
    (before the bracket of a nested sequence or map)."""

    def typed(item: Any, start: int) -> None:
        problem = check_present(kind, item)
        if problem:
            raise SerdeError(problem, start if isinstance(item, list | dict) else scanner.pos)

    return read(typed)


def nvext_shape(state: MockState) -> StructShape:
    """``NvExt`` as this mock's frontend reads it (the ``trimmed`` mode takes one more field)."""
    return NVEXT_WITH_TRIMMED if state.config.routed_experts_mode == "trimmed" else NVEXT


def _streamed(items: Iterable[tuple[str, Any]], spans: list[Member] | None, nvext: StructShape) -> None:
    seen: set[str] = set()
    for i, (key, value) in enumerate(items):
        name = ALIASES.get(key, key)
        kind = NAMED_FIELDS.get(name)
        if kind is None:
            continue
        if name in seen:
            _raise_at(spans, i, "key", f"duplicate field `{name}`")
        seen.add(name)
        if value is None:
            continue
        if kind == "nvext":
            # A map or a sequence the scanner read was checked while it was read (_scan_struct, _scan_struct_seq);
            # without positions, any problem asks for that scan (_raise_at).
            scanned = spans is not None and isinstance(value, list | dict)
            problem = None if scanned else _struct_problem(value, nvext)
            if problem:
                _raise_at(spans, i, "value", problem)
            continue
        problem = check(kind, value)
        if problem:
            _raise_at(spans, i, "value", problem)


# ---- the buffered part: the flattened OpenAI request and CommonExt ---------------------------------------------
def read_flattened(body: dict[str, Any], entries: Sequence[tuple[str, Any]] | None) -> None:
    """``inner`` then ``common`` from the buffered entries (body order; ``entries``: every key and value as sent,
    repeats included, when the body was scanned). ``Refusal`` (at the end of the body) for the first error."""
    order = list(body.items()) if entries is None else entries
    for table, required in ((INNER_FIELDS, REQUIRED), (COMMON_FIELDS, ())):
        seen: set[str] = set()
        for key, value in order:
            if key not in table:
                continue
            if key in seen:
                raise Refusal(f"duplicate field `{key}`")
            seen.add(key)
            problem = check(table[key], value) if key not in required else check_present(table[key], value)
            if problem:
                raise Refusal(problem)
        for name in required:
            if name not in body:
                raise Refusal(f"missing field `{name}`")


_NEGATIVE_ZERO = re.compile(rb"-0(?![0-9.eE])")
"""``-0`` as an integer, which orjson reads as 0 and serde_json as the float -0.0 (a rare body: the scanner reads
it; a ``-0`` inside a string only costs that body the scan)."""


def _repeats(raw: bytes, body: dict[str, Any]) -> bool:
    """Whether a key of the body or of its ``nvext`` may be repeated (orjson keeps the last; serde refuses some
    repeats): a cheap count of each key's JSON text, confirmed by a scan when it says yes."""
    keys = [*body, *_struct_keys(body.get("nvext"), NVEXT_WITH_TRIMMED)]
    return any(raw.count(orjson.dumps(k)) > 1 for k in keys)


def _struct_keys(value: Any, shape: StructShape) -> list[str]:
    """The keys of a struct given as a map, and of the structs inside it (as maps or sequences)."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = value.items()
        keys = list(value)
    elif isinstance(value, list):
        items, keys = zip(shape.fields, value, strict=False), []
    else:
        return []
    for key, item in items:
        sub = STRUCTS.get(shape.fields.get(key, ""))
        if sub is not None:
            keys += _struct_keys(item, sub)
    return keys


# ---- 3. validate(): the Validation table -------------------------------------------------------------------
def _f32_outside(value: Any, low: float, high: float) -> bool:
    return value is not None and not low <= to_f32(value) <= high


def _unsupported(body: dict[str, Any], lax: bool) -> str | None:
    if not lax:
        unknown = [
            k
            for k in body
            if k not in INNER_FIELDS and k not in COMMON_FIELDS and ALIASES.get(k, k) not in NAMED_FIELDS
        ]
        unknown = sorted(k for k in unknown if k not in _PASSTHROUGH_NAMES)  # the frontend: hash-map order
        if unknown:
            return "Unsupported parameter(s): " + ", ".join(f"`{k}`" for k in unknown)
    for name, kind, message in PASSTHROUGH:
        if check(kind, body.get(name)):
            return message
    return None


_PASSTHROUGH_NAMES = frozenset(name for name, _, _ in PASSTHROUGH)


def _logit_bias(body: dict[str, Any]) -> str | None:
    for token, bias in (body.get("logit_bias") or {}).items():
        if not (token.isascii() and token.isdigit() and int(token) < 2**32):
            return "Logit bias key must be a non-negative 32-bit integer token id"
        if isinstance(bias, bool) or not isinstance(bias, int | float):
            return f"Logit bias value for token '{token}' must be a number, got {_value_debug(bias)}"
        if not -100 <= to_f32(bias) <= 100:
            return f"Logit bias for token '{token}' must be between -100 and 100, got {rust_f32(bias)}"
    return None


def _value_debug(value: Any) -> str:
    """``serde_json::Value``'s ``{:?}`` (maps in body order: the frontend's serde_json keeps insertion order), for a
    logit bias value that is not a number."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return f"Bool({str(value).lower()})"
    if isinstance(value, int):  # past u64/i64 serde_json holds the integer as an f64 (its own parse of the digits)
        inside = -(2**63) <= value < 2**64
        return f"Number({value if inside else rust_debug_float(serde_f64(str(value).encode()))})"
    if isinstance(value, float):
        return f"Number({rust_debug_float(value)})"
    if isinstance(value, str):
        return f"String({rust_debug_str(value)})"
    if isinstance(value, list):
        return "Array [" + ", ".join(map(_value_debug, value)) + "]"
    return "Object {" + ", ".join(f"{rust_debug_str(k)}: {_value_debug(v)}" for k, v in value.items()) + "}"


MAX_TOKENS_LIMIT = 1048576


def _token_budget(label: str, value: int | None) -> str | None:
    if value == 0:
        return f"{label} must be greater than 0, got 0"
    if value is not None and value > MAX_TOKENS_LIMIT:
        return f"{label} must not exceed {MAX_TOKENS_LIMIT}, got {value}"
    return None


class Bare(str):
    """A ``validate()`` message the 1.6.1 frontend sends without the ``Validation: `` prefix."""


def _stop_problem(stop: Any) -> str | None:
    if isinstance(stop, str):
        return "Stop sequence cannot be empty" if stop == "" else None
    if isinstance(stop, list):
        if not stop:
            return "Stop sequences array cannot be empty"
        what = "stop token IDs" if isinstance(stop[0], int) else "stop sequences"
        if len(stop) > MAX_STOP_SEQUENCES:
            return Bare(f"Maximum of {MAX_STOP_SEQUENCES} {what} allowed, got {len(stop)}")
        for i, s in enumerate(stop):
            if s == "":
                return f"Stop sequence at index {i} cannot be empty"
    return None


GUIDED = ("json", "regex", "choice", "grammar")
"""The guided-decoding constraints, in the order the frontend names them (``guided_whitespace_pattern`` and
``guided_decoding_backend`` modify a constraint and are not counted)."""


def _guided(body: dict[str, Any]) -> list[str]:
    """The explicit ``guided_*`` constraints a request sets (a null field or an empty choice list sets none)."""
    return [
        name
        for name in GUIDED
        if (bool(body.get("guided_choice")) if name == "choice" else body.get(f"guided_{name}") is not None)
    ]


def _guided_conflict(body: dict[str, Any]) -> Bare | None:
    """More than one guided-decoding constraint; a JSON ``response_format`` counts as ``json`` (real 1.6.1)."""
    active = _guided(body)
    response_format = body.get("response_format")
    json_format = isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")
    if json_format and "json" not in active:
        active.insert(0, "json")
    if len(active) < 2:
        return None
    return Bare(f"Only one guided-decoding constraint can be set; received: {', '.join(active)}")


def _forced_tool_choice(body: dict[str, Any]) -> bool:
    """``tool_choice`` that forces a call: ``required``, or a named function."""
    choice = body.get("tool_choice")
    named = isinstance(choice, dict) and isinstance(choice.get("function"), dict)
    return choice == "required" or named


def _completion_ids_single_choice(body: dict[str, Any]) -> str | None:
    nvext = body.get("nvext") or {}
    n = body.get("n")
    if n is not None and n > 1 and "completion_token_ids" in (nvext.get("extra_fields") or ()):
        return '`nvext.extra_fields=["completion_token_ids"]` requires exactly one generated choice'
    return None


def _n_temperature(body: dict[str, Any]) -> str | None:
    n = body.get("n")
    temperature = body.get("temperature")
    t = to_f32(temperature) if temperature is not None else 1.0
    if n is not None and n > 1 and t == 0.0:
        return (
            "When n > 1, temperature must be greater than 0 to ensure diverse outputs. "
            f"Got n={n}, temperature={rust_f32(t)}"
        )
    return None


MAX_TOOLS = 1536
MAX_FUNCTION_NAME_BYTES = 128
RUST_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
RUST_WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"
"""``char::is_whitespace`` (Unicode ``White_Space``), what Rust's ``str::trim`` strips; Python's ``str.strip()``
also strips ``\\x1c``-``\\x1f``."""
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _function_fields(tool: Any) -> tuple[str, Any]:
    """``(name, parameters)`` of a tool deserialized as ``ChatCompletionTool`` (from maps or, field by field, from
    sequences: ``BUFFERED_STRUCTS``); a missing ``parameters`` is None."""
    function: Any = tool["function"] if isinstance(tool, dict) else tool[1]
    if isinstance(function, dict):
        return function["name"], function.get("parameters")
    return function[0], function[2] if len(function) > 2 else None


def _tools_problem(tools: list[Any] | None) -> str | None:
    """``validate_tools``: not empty, at most 1,536, and each function's name (at most 128 bytes, not blank, only
    ASCII letters, digits, ``_`` and ``-``) and parameters (a JSON object when given), tool by tool.

    Not modelled: a function with ``strict: true`` and object ``parameters`` also goes through the frontend's
    strict-schema validator (``Invalid schema for function ...``); the mock accepts those schemas."""
    if tools is None:
        return None
    if not tools:
        return "tools array cannot be empty; omit the field entirely to disable tool use"
    if len(tools) > MAX_TOOLS:
        return f"Maximum of {MAX_TOOLS} tools are supported, got {len(tools)}"
    for i, tool in enumerate(tools):
        name, parameters = _function_fields(tool)
        spelled = name.encode()
        size = len(spelled)
        if size > MAX_FUNCTION_NAME_BYTES:
            return (
                f"Function name at index {i} exceeds {MAX_FUNCTION_NAME_BYTES} character limit, got {size} characters"
            )
        if not name.strip(RUST_WHITESPACE):
            return f"Function name at index {i} cannot be empty"
        if not _NAME_BYTES.issuperset(spelled):
            return (
                f'Function at index {i} has an invalid name: "{name}". '
                "Only a-z, A-Z, 0-9, underscores, and dashes are allowed."
            )
        if parameters is not None and not isinstance(parameters, dict):
            return f'Function parameters at index {i} for "{name}" must be a JSON Schema object'
    return None


def _tool_choice_problem(choice: Any, tools: list[Any] | None) -> str | None:
    """``validate_tool_choice``: ``required`` needs tools; a named function must be one of them."""
    if choice == "required" and not tools:
        return 'tool_choice is "required" but tools is empty'
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        if all(_function_fields(tool)[0] != name for tool in tools or ()):
            return f'tool named "{name}" in tool_choice is not present in tools'
    return None


Rule = Callable[[dict[str, Any], bool], str | None]
VALIDATION: tuple[tuple[str, Rule], ...] = (
    ("unsupported / passthrough fields", _unsupported),
    ("guided_* / response_format", lambda b, _: _guided_conflict(b)),
    (
        "chat_template_args",
        lambda b, _: (
            "`chat_template` is not supported inside `chat_template_args`"
            if "chat_template" in (b.get("chat_template_args") or b.get("chat_template_kwargs") or {})
            else None
        ),
    ),
    ("model", lambda b, _: "Model cannot be empty" if not b["model"].strip() else None),
    (
        "frequency_penalty",
        lambda b, _: (
            f"Frequency penalty must be between -2 and 2, got {rust_f32(b['frequency_penalty'])}"
            if _f32_outside(b.get("frequency_penalty"), -2, 2)
            else None
        ),
    ),
    ("logit_bias", lambda b, _: _logit_bias(b)),
    (
        "top_logprobs",
        lambda b, _: (
            f"Top_logprobs must be between 0 and 20, got {b['top_logprobs']}"
            if (b.get("top_logprobs") or 0) > 20
            else None
        ),
    ),
    ("max_tokens", lambda b, _: _token_budget("Max tokens", b.get("max_tokens"))),
    ("max_completion_tokens", lambda b, _: _token_budget("Max completion tokens", b.get("max_completion_tokens"))),
    (
        "n",
        lambda b, _: (
            f"n must be between 1 and 128, got {b['n']}" if b.get("n") is not None and not 1 <= b["n"] <= 128 else None
        ),
    ),
    ("n / nvext.extra_fields", lambda b, _: _completion_ids_single_choice(b)),
    (
        "presence_penalty",
        lambda b, _: (
            f"Presence penalty must be between -2 and 2, got {rust_f32(b['presence_penalty'])}"
            if _f32_outside(b.get("presence_penalty"), -2, 2)
            else None
        ),
    ),
    ("stop", lambda b, _: _stop_problem(b.get("stop"))),
    (
        "temperature",
        lambda b, _: (
            f"Temperature must be between 0 and 2, got {rust_f32(b['temperature'])}"
            if _f32_outside(b.get("temperature"), 0, 2)
            else None
        ),
    ),
    (
        "top_p",
        lambda b, _: (
            f"Top_p must be between 0 and 1, got {rust_f32(b['top_p'])}"
            if b.get("top_p") is not None and not 0 < to_f32(b["top_p"]) <= 1
            else None
        ),
    ),
    ("tools", lambda b, _: _tools_problem(b.get("tools"))),
    ("tool_choice", lambda b, _: _tool_choice_problem(b.get("tool_choice"), b.get("tools"))),
    (
        "user",
        lambda b, _: "User ID cannot be empty" if isinstance(b.get("user"), str) and not b["user"].strip() else None,
    ),
    (
        "repetition_penalty",
        lambda b, _: (
            f"Repetition penalty must be between 0 and 2, got {rust_f32(b['repetition_penalty'])}"
            if b.get("repetition_penalty") is not None and not 0 < to_f32(b["repetition_penalty"]) <= 2
            else None
        ),
    ),
    (
        "min_p",
        lambda b, _: (
            f"Min_p must be between 0 and 1, got {rust_f32(b['min_p'])}" if _f32_outside(b.get("min_p"), 0, 1) else None
        ),
    ),
    (
        "top_k",
        lambda b, _: (
            "Top_k must be null or greater than or equal to -1"
            if b.get("top_k") is not None and b["top_k"] < -1
            else None
        ),
    ),
    ("n / temperature", lambda b, _: _n_temperature(b)),
    (
        "continue_final_message",
        lambda b, _: (
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
            if b.get("continue_final_message") is True and b.get("add_generation_prompt") is not False
            else None
        ),
    ),
)
"""``ValidateRequest::validate`` for chat, in its order; each rule returns the text after ``Validation: ``."""


def _thinking(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, dict):
        return "`thinking` must be a boolean or an object with `type` set to `enabled`, `disabled`, or `adaptive`"
    if value.get("type") not in ("enabled", "disabled", "adaptive"):
        return "`thinking.type` must be `enabled`, `disabled`, or `adaptive`"
    return None


MESSAGES_EMPTY = "The 'messages' field cannot be empty. At least one message is required."
STREAM_OPTIONS_WITHOUT_STREAM = "The 'stream_options' field is only allowed when 'stream' is set to true."
MOCKER_NEEDS_MAX_TOKENS = "`max_output_tokens` (or `max_tokens`) is required by the mocker worker"


# ---- the whole request ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedRequest:
    """A request the frontend accepts: the body, its ``nvext``, the prompt ids and the sampling parameters."""

    body: dict[str, Any]
    nvext: dict[str, Any]
    prompt: list[int]
    params: SamplingParams


def worker_id(state: MockState) -> int:
    """The id of the one worker behind the mock frontend (``nvext`` may route to it by id)."""
    return mix64(state.config.seed ^ 0x5EED) | (1 << 63)


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


class WorkerError(RequestError):
    """A refusal of the worker, not of the frontend. A streamed request has its 200 and event stream by then, so
    the frontend sends it as one SSE event, ``data: {"error": {message, type, code}}``, then ``[DONE]`` (real
    1.6.1, chat and completions); otherwise it is the usual JSON error."""

    def __init__(self, status: int, message: str, *, streamed: bool, details: dict[str, Any] | None = None) -> None:
        super().__init__(status, message, details=details)
        self.streamed = streamed


def deserialize(raw: bytes, state: MockState) -> dict[str, Any]:
    """Stage 1: the body as serde reads it, or ``RequestError`` with serde's text and position."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    scanned = None
    try:
        fast = isinstance(body, dict) and not _repeats(raw, body) and not _NEGATIVE_ZERO.search(raw)
        if fast:
            try:
                read_streamed(raw, body, state)
                read_flattened(body, None)
                return _one_form(body, state)
            except Refusal:
                pass  # read it again as serde does, numbers included, to word and place the error
        scanned = read_streamed(raw, None, state)
        entries = None
        if scanned is not None:  # the entries as sent, and the body when orjson refused one serde accepts
            entries = [(m.key, m.value) for m in scanned.members]
            if not isinstance(body, dict):
                body = dict(entries)
        read_flattened(body, entries)
        if scanned is not None and scanned.trailing is not None:
            raise Refusal(scanned.trailing.detail, scanned.trailing.pos)
    except Refusal as exc:
        at = exc.at
        if at is None:
            at = scanned.end if scanned is not None else len(raw.rstrip(b" \t\r\n"))
        raise _bad(f"{DESERIALIZE}{exc.detail} {location(raw, at)}") from None
    return _one_form(body, state)


def _one_form(body: dict[str, Any], state: MockState) -> dict[str, Any]:
    """The accepted body with ``nvext`` and its structs as maps (serde also reads them from sequences)."""
    if isinstance(body.get("nvext"), list | dict):
        body["nvext"] = as_map(body["nvext"], nvext_shape(state))
    return body


def validate(body: dict[str, Any], state: MockState) -> None:
    """Stages 2 and 3: the HTTP service's checks (``messages`` not empty, ``stream_options`` only with ``stream``),
    then ``validate()``. A ``Bare`` message goes out without the ``Validation: `` prefix."""
    thinking = _thinking(body.get("thinking"))  # normalize_reasoning_template_args runs first
    if thinking:
        raise _bad("Validation: " + thinking)
    for name, instead in (("function_call", "tool_choice"), ("functions", "tools")):
        if body.get(name) is not None:
            message = f"Validation: `{name}` is deprecated. Please migrate to use `{instead}` instead."
            raise RequestError(501, message, "Not Implemented")
    if not body["messages"]:
        raise _bad("Validation: " + MESSAGES_EMPTY)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise _bad("Validation: " + STREAM_OPTIONS_WITHOUT_STREAM)
    lax = state.config.lax_validation
    for _, rule in VALIDATION:
        problem = rule(body, lax)
        if problem:
            raise _bad(problem if isinstance(problem, Bare) else "Validation: " + problem)


def parse_chat(raw: bytes, state: MockState) -> ParsedRequest:
    """All four stages for ``/v1/chat/completions``; ``RequestError`` for a request the real frontend refuses."""
    body = deserialize(raw, state)
    validate(body, state)
    if body["model"] != state.config.model:
        raise RequestError(404, "Model not found")
    if _forced_tool_choice(body) and _guided(body):
        raise _bad("Invalid request")  # a forced tool call is its own constraint: no room for an explicit guided_*
    if body.get("continue_final_message") is True and not _flatten_content(body["messages"][-1].get("content")):
        # The preprocessor refuses to continue a final message without text (real 1.6.1 frontend: also with
        # ``nvext.token_data``, and before the mocker's token-budget check).
        raise _bad("Invalid request")
    nvext = body.get("nvext") or {}
    wid = worker_id(state)
    routed = any(nvext.get(k) not in (None, wid) for k in ("backend_instance_id", "decode_worker_id"))
    if routed or nvext.get("dp_rank") is not None:
        raise _bad("Invalid request")  # no such worker or data-parallel rank (the mock runs one worker, no ranks)
    token_data = nvext.get("token_data")
    prompt = _in_vocabulary(list(token_data) if token_data is not None else _prompt_from_messages(body, state), state)
    no_budget = body.get("max_tokens") is None and body.get("max_completion_tokens") is None
    if state.config.dynamo_backend == "mocker" and no_budget:
        raise WorkerError(400, MOCKER_NEEDS_MAX_TOKENS, streamed=body.get("stream") is True)
    return ParsedRequest(body, nvext, prompt, _sampling(body, nvext, prompt, state))


def _in_vocabulary(prompt: list[int], state: MockState) -> list[int]:
    """The prompt, unless an id is outside the vocabulary: ``Invalid request`` (real 1.6.1: before the mocker's
    token-budget check)."""
    if not ids_in_range(prompt, state.tokenizer.vocab_size):
        raise _bad("Invalid request")
    return prompt


def _flatten_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _prompt_from_messages(body: dict[str, Any], state: MockState) -> list[int]:
    messages = [{**m, "content": _flatten_content(m.get("content"))} for m in body["messages"]]
    generation_prompt = body.get("add_generation_prompt") is not False
    return _tokenize(state.tokenizer.render_chat(messages, body.get("tools"), generation_prompt), state)


def _tokenize(text: str, state: MockState) -> list[int]:
    """The ids of a text prompt (a rendered chat or a completions prompt), tokenized as the 1.6.1 frontend does:
    its preprocessor removes every NUL character first (``encode_with_timing``: "Prompt contains null bytes;
    stripping to avoid tokenizer divergence"), so a content of ``"a\\u0000b"`` costs what ``"ab"`` costs."""
    return state.tokenizer.encode(text.replace("\0", ""))


def _sampling(body: dict[str, Any], nvext: dict[str, Any], prompt: list[int], state: MockState) -> SamplingParams:
    room = state.max_model_len - len(prompt)
    if room < 1:
        if state.config.dynamo_backend == "mocker":  # the mocker worker fails; the frontend reports a 500
            raise WorkerError(
                500, "Internal server error", streamed=body.get("stream") is True, details={"backend_status": 500}
            )
        raise _bad(context_error(len(prompt), state.max_model_len))
    asked = body.get("max_completion_tokens")
    if asked is None:
        asked = body.get("max_tokens")
    budget = min(asked if asked is not None else room, room)
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


# ---- /v1/completions (the mock's subset; not part of the differential suite) ------------------------------------
def parse_completion(raw: bytes, state: MockState) -> ParsedRequest:
    """``/v1/completions``: a string prompt or one list of token ids, unstreamed, with the chat request's sampling
    fields and ``nvext``."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"{DESERIALIZE}{exc}") from None
    if not isinstance(body, dict):
        raise _bad(f"{DESERIALIZE}invalid type: {type(body).__name__}, expected struct NvCreateCompletionRequest")
    for name in ("model", "prompt"):
        if name not in body:
            raise _bad(f"{DESERIALIZE}missing field `{name}`")
    nvext = body.get("nvext")
    if nvext is not None:
        if _struct_problem(nvext, nvext_shape(state)):
            raise _bad(f"{DESERIALIZE}invalid nvext: {orjson.dumps(nvext).decode()}")
        body["nvext"] = nvext = as_map(nvext, nvext_shape(state))
    for key, kind in (("logprobs", "u8"), *((k, v) for k, v in COMMON_FIELDS.items())):
        problem = check(kind, body.get(key))
        if problem:
            raise _bad(f"{DESERIALIZE}{key}: {problem}")
    if body.get("stream") is True:
        raise RequestError(501, "the mock serves /v1/completions without streaming only", "Not Implemented")
    if body["model"] != state.config.model:
        raise RequestError(404, "Model not found")
    nvext = nvext or {}
    raw_prompt = body["prompt"]
    if raw_prompt in ("", []):  # checked before NULs are removed: a prompt of "\u0000" is 0 tokens, and served
        raise _bad(f"Validation: Prompt string{' array' if raw_prompt == [] else ''} cannot be empty")
    if isinstance(raw_prompt, str):
        prompt = _tokenize(raw_prompt, state)
    elif isinstance(raw_prompt, list) and all(is_int(t) for t in raw_prompt):
        prompt = raw_prompt
    else:
        raise _bad(f"Validation: the mock accepts a string prompt or one list of token ids, got {raw_prompt!r}")
    if nvext.get("token_data") is not None:
        prompt = list(nvext["token_data"])
    if math.isnan(float(body.get("temperature") or 0)):  # pragma: no cover - JSON has no NaN
        raise _bad("Validation: temperature is NaN")
    return ParsedRequest(body, nvext, prompt, _sampling(body, nvext, _in_vocabulary(prompt, state), state))
