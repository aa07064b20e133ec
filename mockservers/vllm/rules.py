"""vLLM 0.32 request rules for ``POST /inference/v1/generate``: what the mock accepts, and the error of the rest.

The rules are vLLM's, in the order vLLM applies them (sources: ``fastapi/routing.py`` and
``vllm/entrypoints/serve/utils/api_utils.py:validate_json_request`` for the body; the request model
``vllm/entrypoints/scale_out/token_in_token_out/protocol.py:GenerateRequest``; ``vllm/sampling_params.py``; the route
``.../token_in_token_out/serving.py:serve_tokens``; ``vllm/v1/engine/input_processor.py:process_inputs``):

1. the body: JSON as the standard library reads it (its message and position in ``json_invalid``), then the media
   type (the route's dependency: exactly ``application/json``, parameters and case aside);
2. the request model, validated by pydantic exactly as vLLM declares it: ``GenerateRequest`` below is the table of
   top-level fields (type, default, bounds) and ``SamplingFields`` the table of ``sampling_params`` fields, with
   vLLM's union for ``sampling_params`` (an ``is_instance_of SamplingParams`` branch, then the field dict). Every
   error of a body is reported at once, formatted by vLLM's validation handler (``format_validation_errors``);
3. ``SamplingParams.__post_init__`` (``POST_INIT_CHECKS``: range checks, ``(parameter=..., value=...)`` suffixes);
4. the route's checks, the engine's ``SamplingParams.verify`` and the input processor (``_accept``,
   ``_engine_checks``, ``_check_prompt``), each raising the first problem it finds.

A refusal of layers 3-4 is ``ParameterError`` (vLLM's ``VLLMValidationError``, which pydantic lets through); the
app turns it into vLLM's ``{"error": {message, type, param, code}}`` envelope.

Layers 1-2 are first tried in one pass, pydantic's own JSON reader straight into the request model
(``_plain_request``): it accepts a subset of the bodies the standard library reads, with the same values, so a
request it accepts is the one layers 1-2 give; anything it refuses goes through them as written above.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator
from pydantic_core import core_schema
from typing_extensions import TypedDict

from mockservers.app import MockState
from mockservers.engine import SamplingParams
from mockservers.protocol import RequestError

MAX_LOGPROBS = 20
"""``--max-logprobs`` default."""
MAX_N_SEQUENCES = 16384
"""``VLLM_MAX_N_SEQUENCES`` default."""
MAX_LOGPROB_TOKEN_IDS = 128
MAX_CACHE_SALT_LENGTH = 128
CACHE_SALT_FORBIDDEN = ("@", "/", "\\", "\x00")
GREEDY_BELOW = 1e-5
"""``_SAMPLING_EPS``: a temperature under it is greedy sampling."""
MIN_TEMPERATURE = 1e-2
"""``_MAX_TEMP``: a positive temperature under it is raised to it."""
MSGPACK_INT_RANGE = (-(2**63), 2**64 - 1)
"""What the engine's MessagePack transport can carry; the route encodes the sampling parameters first."""
_RANDOM = random.Random(secrets.randbits(64))


class ParameterError(Exception):
    """vLLM's ``VLLMValidationError``: HTTP 400, ``BadRequestError``, ``param`` = ``parameter``.

    Not a ``ValueError``, so pydantic does not turn it into a validation error: raised inside a validator it ends
    the request with this message, as in vLLM.
    """

    def __init__(self, message: str, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        extras = [f"{k}={v}" for k, v in (("parameter", self.parameter), ("value", self.value)) if v is not None]
        base = super().__str__()
        return f"{base} ({', '.join(extras)})" if extras else base


class PlainError(Exception):
    """A ``ValueError`` raised past pydantic by the route: HTTP 400, ``BadRequestError``, no ``param``."""


class EngineFailure(Exception):
    """A ``ValueError`` raised inside the engine's ``generate``: vLLM wraps it in an ``EngineGenerateError`` with no
    message, so the answer is HTTP 500, ``InternalServerError``, an empty message."""


# ---------------------------------------------------------------------------------------------------------------------
# The tables: sampling_params fields (vllm/sampling_params.py:SamplingParams, declaration order, defaults).


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@pydantic.dataclasses.dataclass
class StructuredOutputsParams:
    json: str | dict[Any, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    def __post_init__(self) -> None:
        constraints = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
        count = sum(getattr(self, name) is not None for name in constraints)
        shown = {**self.__dict__, "_backend": None, "_backend_was_auto": False}
        if count > 1:
            raise ParameterError(
                f"You can only use one kind of structured outputs constraint but multiple are specified: {shown}"
            )
        if count < 1:
            raise ParameterError(
                f"You must use one kind of structured outputs constraint but none are specified: {shown}"
            )


@pydantic.dataclasses.dataclass
class RepetitionDetectionParams:
    max_pattern_size: int = 0
    min_pattern_size: int = 0
    min_count: int = 0

    def __post_init__(self) -> None:
        if self.max_pattern_size < 0 or self.min_pattern_size < 0 or self.min_pattern_size > self.max_pattern_size:
            raise ParameterError(
                "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size. "
                "Set both to 0 to disable repetitive pattern detection."
            )
        if self.max_pattern_size > 0 and self.min_count < 2:
            raise ParameterError(
                "min_count must be >= 2 to detect repetitive patterns in engine output. If you do not wish to detect "
                "repetitive patterns, set max_pattern_size to 0."
            )


class SamplingFields(TypedDict, total=False):
    n: int
    presence_penalty: float
    frequency_penalty: float
    repetition_penalty: float
    temperature: float
    watermarking: bool | None
    top_p: float
    top_k: int
    min_p: float
    seed: int | None
    stop: str | list[str] | None
    stop_token_ids: list[int] | None
    ignore_eos: bool
    max_tokens: int | None
    min_tokens: int
    logprobs: int | None
    prompt_logprobs: int | None
    prompt_logprob_token_ids: list[list[StrictInt]] | None
    prompt_logprob_start: int | None
    logprob_token_ids: list[int] | None
    flat_logprobs: bool
    detokenize: bool
    skip_special_tokens: bool
    spaces_between_special_tokens: bool
    include_stop_str_in_output: bool
    output_kind: RequestOutputKind
    stream_interval: int | None
    skip_clone: bool
    output_text_buffer_length: int
    structured_outputs: StructuredOutputsParams | None
    logit_bias: dict[int, float] | None
    allowed_token_ids: list[int] | None
    extra_args: dict[str, Any] | None
    bad_words: list[str] | None
    skip_reading_prefix_cache: bool | None
    thinking_token_budget: int | None
    repetition_detection: RepetitionDetectionParams | None
    routed_experts_prompt_start: int
    trace_decode_token_ids: list[int] | None


SAMPLING_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "n": 1,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "ignore_eos": False,
        "max_tokens": 16,
        "min_tokens": 0,
        "detokenize": True,
        "skip_special_tokens": True,
        "routed_experts_prompt_start": 0,
    }
)
"""Defaults the checks read (every other field defaults to ``None``/``False``, as in ``SamplingParams``)."""


# ---------------------------------------------------------------------------------------------------------------------
# SamplingParams.__post_init__ / _verify_args, in order: (condition on the values, message, parameter or None).


def _between(value: float, low: float, high: float) -> bool:
    return low <= value <= high


PostInitCheck = tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], str], str | None]

POST_INIT_CHECKS: tuple[PostInitCheck, ...] = (
    (lambda s: s["n"] < 1, lambda s: f"n must be at least 1, got {s['n']}.", None),
    (
        lambda s: s["n"] > MAX_N_SEQUENCES,
        lambda s: (
            f"n must be at most {MAX_N_SEQUENCES}, got {s['n']}. To increase this limit, set the "
            "VLLM_MAX_N_SEQUENCES environment variable."
        ),
        None,
    ),
    (
        lambda s: bool(s.get("extra_args")) and not _ints_fit(s["extra_args"], -(2**63), 2**64 - 1),
        lambda s: "extra_args integers must be between -2**63 and 2**64 - 1.",
        "extra_args",
    ),
    (
        lambda s: not _between(s["presence_penalty"], -2.0, 2.0),
        lambda s: f"presence_penalty must be in [-2, 2], got {s['presence_penalty']}.",
        None,
    ),
    (
        lambda s: not _between(s["frequency_penalty"], -2.0, 2.0),
        lambda s: f"frequency_penalty must be in [-2, 2], got {s['frequency_penalty']}.",
        None,
    ),
    (
        lambda s: not math.isfinite(s["repetition_penalty"]),
        lambda s: f"repetition_penalty must be a finite number, got {s['repetition_penalty']}.",
        None,
    ),
    (
        lambda s: s["repetition_penalty"] <= 0.0,
        lambda s: f"repetition_penalty must be greater than zero, got {s['repetition_penalty']}.",
        None,
    ),
    (
        lambda s: not math.isfinite(s["temperature"]),
        lambda s: f"temperature must be a finite number, got {s['temperature']}.",
        "temperature",
    ),
    (
        lambda s: s["temperature"] < 0.0,
        lambda s: f"temperature must be non-negative, got {s['temperature']}.",
        "temperature",
    ),
    (
        lambda s: s["temperature"] > 2.0,
        lambda s: f"temperature must be in [0, 2], got {s['temperature']}.",
        "temperature",
    ),
    (lambda s: not 0.0 < s["top_p"] <= 1.0, lambda s: f"top_p must be in (0, 1], got {s['top_p']}.", "top_p"),
    (lambda s: s["top_k"] < -1, lambda s: f"top_k must be 0 (disable), or at least 1, got {s['top_k']}.", None),
    (lambda s: not _between(s["min_p"], 0.0, 1.0), lambda s: f"min_p must be in [0, 1], got {s['min_p']}.", None),
    (
        lambda s: s["max_tokens"] is not None and s["max_tokens"] < 1,
        lambda s: f"max_tokens must be at least 1, got {s['max_tokens']}.",
        "max_tokens",
    ),
    (
        lambda s: s["min_tokens"] < 0,
        lambda s: f"min_tokens must be greater than or equal to 0, got {s['min_tokens']}.",
        None,
    ),
    (
        lambda s: s["max_tokens"] is not None and s["min_tokens"] > s["max_tokens"],
        lambda s: f"min_tokens must be less than or equal to max_tokens={s['max_tokens']}, got {s['min_tokens']}.",
        None,
    ),
    (
        lambda s: s.get("stream_interval") is not None and s["stream_interval"] < 1,
        lambda s: f"stream_interval must be at least 1, got {s['stream_interval']}.",
        "stream_interval",
    ),
    (
        lambda s: s.get("logprobs") is not None and s["logprobs"] != -1 and s["logprobs"] < 0,
        lambda s: f"logprobs must be non-negative or -1, got {s['logprobs']}.",
        "logprobs",
    ),
    (
        lambda s: s.get("prompt_logprobs") is not None and s["prompt_logprobs"] != -1 and s["prompt_logprobs"] < 0,
        lambda s: f"prompt_logprobs must be non-negative or -1, got {s['prompt_logprobs']}.",
        "prompt_logprobs",
    ),
    (lambda s: any(not x for x in s["stop"]), lambda s: "stop cannot contain an empty string.", None),
    (
        lambda s: bool(s["stop"]) and not s["detokenize"],
        lambda s: "stop strings are only supported when detokenize is True. Set detokenize=True to use stop.",
        None,
    ),
    (
        lambda s: any(not x for x in s["bad_words"]),
        lambda s: f"bad_words cannot contain an empty string. Got bad_words={s['bad_words']}",
        None,
    ),
)


def _ints_fit(value: Any, low: int, high: int) -> bool:
    """True when every int inside ``value`` (nested dicts and lists, keys too) is in ``[low, high]``."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is int:
            if not low <= item <= high:
                return False
        elif kind is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
    return True


def _thinking_budget(value: Any) -> int | None:
    """``validate_thinking_token_budget``: ``None``, ``-1`` (unlimited: ``None``) or a non-negative int."""
    if value is None:
        return None
    if isinstance(value, (bool, float)) or not isinstance(value, int) or value < -1:
        raise ParameterError(
            "`thinking_token_budget` must be a non-negative integer or -1 for unlimited.",
            "thinking_token_budget",
            value,
        )
    return None if value == -1 else value


def post_init(fields: dict[str, Any]) -> dict[str, Any]:
    """``SamplingParams(**fields)``: defaults, the normalisations of ``__post_init__``, then ``_verify_args``."""
    s = SAMPLING_DEFAULTS.copy()
    s.update(fields)
    if 0 < s["temperature"] < MIN_TEMPERATURE:
        s["temperature"] = MIN_TEMPERATURE
    if s.get("seed") == -1:
        s["seed"] = None
    s["thinking_token_budget"] = _thinking_budget(s.get("thinking_token_budget"))
    stop = s.get("stop")
    s["stop"] = [] if stop is None else [stop] if isinstance(stop, str) else stop
    s["stop_token_ids"] = list(dict.fromkeys(s.get("stop_token_ids") or []))
    s["bad_words"] = list(dict.fromkeys(s.get("bad_words") or []))
    for condition, message, parameter in POST_INIT_CHECKS:
        if condition(s):
            # Every check naming a parameter also shows its value, but the extra_args one.
            value = None if parameter in (None, "extra_args") else s[parameter]
            raise ParameterError(message(s), parameter, value)
    if s["temperature"] < GREEDY_BELOW:
        s["top_p"], s["top_k"], s["min_p"] = 1.0, 0, 0.0
        if s["n"] > 1:
            raise ParameterError(f"n must be 1 when using greedy sampling, got {s['n']}.")
    return s


@dataclass(frozen=True)
class Sampling:
    """``sampling_params`` once validated: every value after ``post_init`` (defaults filled in) and the names the
    body gave (the route checks only those against the MessagePack range, and tells a given ``max_tokens`` from
    the default)."""

    values: dict[str, Any]
    given: frozenset[str]


def _sampling(fields: dict[str, Any]) -> Sampling:
    return Sampling(post_init(fields), frozenset(fields))


class _SamplingParamsInstance:
    """Stands for vLLM's ``SamplingParams`` class in the ``is_instance_of`` branch of its union (a JSON body never
    holds one, so that branch always fails, and its error comes first, as in vLLM)."""


_SamplingParamsInstance.__name__ = _SamplingParamsInstance.__qualname__ = "SamplingParams"


class _SamplingParamsSchema:
    """vLLM's ``PydanticMsgspecMixin`` schema: ``instance of SamplingParams`` or the field dict, then ``post_init``
    (kept with the given names as a ``Sampling``)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.is_instance_schema(_SamplingParamsInstance),
                core_schema.no_info_after_validator_function(_sampling, handler(SamplingFields)),
            ]
        )


# ---------------------------------------------------------------------------------------------------------------------
# The table of top-level fields (GenerateRequest), with its validators.


class PlaceholderRangeInfo(BaseModel):
    offset: int = Field(ge=0)
    length: int = Field(gt=0)


class MultiModalFeatures(BaseModel):
    mm_hashes: dict[str, list[str]]
    mm_placeholders: dict[str, list[PlaceholderRangeInfo]]
    kwargs_data: dict[str, list[str | None]] | None = None
    mm_metadata: dict[str, list[str | None]] | None = None

    @model_validator(mode="after")
    def _same_modalities(self) -> MultiModalFeatures:
        modalities = set(self.mm_hashes)
        if set(self.mm_placeholders) != modalities:
            raise ValueError("mm_hashes and mm_placeholders must use the same modalities")
        if self.kwargs_data is not None and set(self.kwargs_data) != modalities:
            raise ValueError("kwargs_data must use the same modalities as mm_hashes")
        if self.mm_metadata is not None and set(self.mm_metadata) != modalities:
            raise ValueError("mm_metadata must use the same modalities as mm_hashes")
        ranges: list[tuple[int, int]] = []
        for modality in modalities:
            n = len(self.mm_hashes[modality])
            if n != len(self.mm_placeholders[modality]):
                raise ValueError(f"{modality} mm_hashes and mm_placeholders must have the same length")
            if self.kwargs_data is not None and len(self.kwargs_data[modality]) != n:
                raise ValueError(f"{modality} kwargs_data and mm_hashes must have the same length")
            if self.mm_metadata is not None and len(self.mm_metadata[modality]) != n:
                raise ValueError(f"{modality} mm_metadata and mm_hashes must have the same length")
            ranges.extend((p.offset, p.offset + p.length) for p in self.mm_placeholders[modality])
        ranges.sort()
        if any(after[0] < before[1] for before, after in itertools.pairwise(ranges)):
            raise ValueError("mm_placeholders must be globally non-overlapping and sorted")
        return self


class ReasoningParserKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


def _check_cache_salt(value: Any) -> None:
    """``validate_cache_salt``: runs before the fields are validated, so its refusal comes before any other."""
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise ParameterError("Parameter 'cache_salt' must be a non-empty string if provided.", "cache_salt")
    if len(value) > MAX_CACHE_SALT_LENGTH or any(c in value for c in CACHE_SALT_FORBIDDEN):
        raise ParameterError(
            "Parameter 'cache_salt' must be at most 128 characters and must not contain '@', '/', '\\\\', or NUL.",
            "cache_salt",
        )


class GenerateRequest(BaseModel):
    request_id: str = ""
    token_ids: list[int] = Field(min_length=1)
    token_offsets: list[tuple[int, int]] | None = None
    features: MultiModalFeatures | None = None
    content_parts: list[dict[str, Any]] | None = None
    sampling_params: Annotated[Sampling, _SamplingParamsSchema]
    model: str | None = None
    reasoning_ended: bool | None = None
    reasoning_parser_kwargs: ReasoningParserKwargs | None = None
    return_token_ids: bool | None = None
    output_mode: Literal["tokens", "text"] = "tokens"
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024)
    priority: int = Field(default=0, ge=-(2**63), le=2**63 - 1)
    kv_transfer_params: dict[str, Any] | None = None
    ec_transfer_params: dict[str, Any] | None = None

    @field_validator("token_ids")
    @classmethod
    def _no_negative_ids(cls, v: list[int]) -> list[int]:
        if min(v) < 0:
            raise ValueError("token_ids must not contain negative values")
        return v

    @model_validator(mode="before")
    @classmethod
    def _cache_salt_first(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _check_cache_salt(data.get("cache_salt"))
        return data

    @model_validator(mode="after")
    def _whole_request(self) -> GenerateRequest:
        if self.content_parts and self.features:
            raise ValueError("content_parts and features are mutually exclusive")
        metadata = self.features.mm_metadata if self.features is not None else None
        if metadata and not self.ec_transfer_params and self.features is not None:
            kwargs = self.features.kwargs_data or {}
            for modality, items in metadata.items():
                data = kwargs.get(modality, [None] * len(items))
                if any(m is not None and k is None for m, k in zip(items, data, strict=True)):
                    raise ValueError("metadata-only multimodal items require ec_transfer_params")
        if self.output_mode != "tokens" and not self.sampling_params.values["detokenize"]:
            raise ValueError(f"output_mode={self.output_mode!r} requires sampling_params.detokenize to be true")
        if self.features is not None:
            for ranges in self.features.mm_placeholders.values():
                if any(p.offset + p.length > len(self.token_ids) for p in ranges):
                    raise ValueError("mm_placeholders must remain within the token_ids sequence")
        return self


_REQUEST = pydantic.TypeAdapter(GenerateRequest)


# ---------------------------------------------------------------------------------------------------------------------
# How vLLM's validation handler words the errors (vllm/entrypoints/serve/exception_handling/handlers/validation.py).

MAX_REPORTED_ERRORS = 10
MAX_ERROR_INPUT_CHARS = 200
MAX_ERROR_CHARS = 1000
INTERNAL_LOC_MARKERS = frozenset(
    {
        *("function-wrap", "function-after", "function-before", "function-plain", "json-or-python", "lax-or-strict"),
        *("chain", "default", "nullable", "tagged-union", "union", "call", "arguments", "is-instance", "is-subclass"),
        *("callable", "str", "int", "float", "bool", "bytes", "bytearray", "list", "tuple", "dict", "set"),
        *("frozenset", "complex", "none", "nonetype"),
    }
)
"""pydantic's wrapper and union-branch names that vLLM drops from a ``loc`` (bracketed ones go too)."""


def _summarize_input(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_ERROR_INPUT_CHARS] + "...[truncated]" if len(value) > MAX_ERROR_INPUT_CHARS else value
    if isinstance(value, (bytes, bytearray)):
        return f"<{type(value).__name__} of {len(value)} bytes>"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"<{type(value).__name__} of {len(value)} items>"
    try:
        text = str(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return f"<{type(value).__name__}>"
    return text[:MAX_ERROR_INPUT_CHARS] + "...[truncated]" if len(text) > MAX_ERROR_INPUT_CHARS else text


def clean_loc(loc: tuple[Any, ...]) -> str:
    """The dotted ``loc``/``param`` without pydantic's wrapper and union-branch markers."""
    parts = [str(p) for p in loc if not (set(str(p)) & set("[]{}()") or str(p).lower() in INTERNAL_LOC_MARKERS)]
    return ".".join(parts) if parts else ".".join(str(p) for p in loc)


def _format_error(err: dict[str, Any]) -> str:
    err = dict(err)
    if "input" in err:
        err["input"] = _summarize_input(err["input"])
    err["loc"] = clean_loc(tuple(err["loc"]))
    text = str(err)
    return text[:MAX_ERROR_CHARS] + "...[truncated]" if len(text) > MAX_ERROR_CHARS else text


def format_validation_errors(errors: list[Any]) -> RequestError:
    """vLLM's answer to a ``RequestValidationError``: ``N validation error(s):`` and at most ten errors, one per
    line; ``type`` ``Bad Request``; ``param`` the first error's cleaned location."""
    first = errors[0]
    param = clean_loc(tuple(first["loc"])) if isinstance(first, dict) and first.get("loc") else None
    label = "error" if len(errors) == 1 else "errors"
    lines = [_format_error(e) if isinstance(e, dict) else str(e) for e in errors[:MAX_REPORTED_ERRORS]]
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {line}\n" for line in lines)
    if len(errors) > MAX_REPORTED_ERRORS:
        message += f"  ...and {len(errors) - MAX_REPORTED_ERRORS} more {label}\n"
    return RequestError(400, message.rstrip(), "Bad Request", param)


def parameter_error(exc: ParameterError | PlainError | EngineFailure) -> RequestError:
    if isinstance(exc, EngineFailure):
        return RequestError(500, "", "InternalServerError")
    param = exc.parameter if isinstance(exc, ParameterError) else None
    return RequestError(400, str(exc), "BadRequestError", param)


# ---------------------------------------------------------------------------------------------------------------------
# Layer 1: the body.


def media_type_ok(content_type: str | None) -> bool:
    """``validate_json_request``: the media type, lowercased, without parameters, is ``application/json``."""
    return (content_type or "").lower().split(";", 1)[0] == "application/json"


def _parses_as_json(content_type: str | None) -> bool:
    """FastAPI reads the body as JSON for ``application/json`` and ``application/*+json`` (no header: not read)."""
    if not content_type:
        return False
    main = content_type.split(";", 1)[0].strip().lower()
    kind, _, sub = main.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
"""A ``bytes.translate`` table: every digit becomes ``0``, every other byte a space."""
_LONG_NUMBER = b"0" * 19


def _has_long_number(raw: bytes) -> bool:
    """A run of 19 digits anywhere (an integer orjson could round): one C pass, no regular expression."""
    return _LONG_NUMBER in raw.translate(_DIGITS_AS_ZERO)


def read_json(raw: bytes, content_type: str | None) -> Any:
    """The body as vLLM's route sees it; raises ``RequestError`` for a body that is not JSON or a wrong media type.

    orjson reads the common body; the standard library, which vLLM uses, reads the rest: what orjson refuses
    (``NaN``/``Infinity``, which it takes), bodies with a run of 19 digits (orjson reads an integer past 64 bits as
    a float; the standard library keeps it exact), and it words the error (message and position) as vLLM does.
    """
    body: Any = None
    if raw and _parses_as_json(content_type):
        try:
            if _has_long_number(raw):
                raise orjson.JSONDecodeError("a number orjson would round", "", 0)
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                detail = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
                          "ctx": {"error": exc.msg}}  # fmt: skip
                raise format_validation_errors([detail]) from None
            except UnicodeDecodeError as exc:
                raise RequestError(400, str(exc), "BadRequestError") from None
    elif raw:
        body = raw
    if not media_type_ok(content_type):
        raise format_validation_errors(["Unsupported Media Type: Only 'application/json' is allowed"])
    return body


# ---------------------------------------------------------------------------------------------------------------------
# Layers 2-4.


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed every check: the prompt, the sampling values (validated, defaulted), one engine
    ``SamplingParams`` per choice, the logprob count (None: not requested), the prompt as a checked int64 array
    when it was built, and the top-level fields the response echoes (``request_id``: the one answered with).
    ``text_mode``: ``output_mode: "text"`` on the ``vllm-0.32`` profile."""

    ids: list[int]
    sampling: dict[str, Any]
    params: list[SamplingParams]
    n_logprobs: int | None
    prompt_array: npt.NDArray[np.int64] | None
    request_id: str
    text_mode: bool
    stream: bool
    return_token_ids: bool


def _out_of_vocab(ids: list[int], vocab: int) -> list[int]:
    return [t for t in ids if t < 0 or t >= vocab]


def _check_in_vocab(ids: list[int], parameter: str, vocab: int) -> None:
    """The ids of ``parameter`` index the logits: each in ``[0, vocab)``."""
    if bad := _out_of_vocab(ids, vocab):
        raise ParameterError(
            f"token_id(s) {bad} in {parameter} contain out-of-vocab token ids. Vocabulary size: {vocab}", parameter, bad
        )


def _check_logprob_count(count: int | None, parameter: str, kind: str, vocab: int) -> None:
    """``logprobs``/``prompt_logprobs`` within ``--max-logprobs`` (-1 asks for the whole vocabulary)."""
    wanted = vocab if count == -1 else count
    if wanted and wanted > MAX_LOGPROBS:
        raise ParameterError(
            f"Requested {kind} logprobs of {wanted}, which is greater than max allowed: {MAX_LOGPROBS}",
            parameter,
            wanted,
        )


def _engine_checks(s: dict[str, Any], vocab: int, max_model_len: int) -> None:
    """``SamplingParams.verify`` and the input processor's feature gates, in order."""
    logprobs = s.get("logprobs")
    _check_logprob_count(logprobs, "logprobs", "sample", vocab)
    chosen = s.get("logprob_token_ids")
    if chosen is not None:
        if len(chosen) > MAX_LOGPROB_TOKEN_IDS:
            raise ParameterError(
                f"Requested logprob_token_ids of length {len(chosen)}, which is greater than max allowed: "
                f"{MAX_LOGPROB_TOKEN_IDS}",
                "logprob_token_ids",
                len(chosen),
            )
        _check_in_vocab(chosen, "logprob_token_ids", vocab)
        if logprobs is not None and logprobs != len(chosen):
            raise ParameterError(
                f"When both logprobs and logprob_token_ids are set, logprobs must equal len(logprob_token_ids). Got "
                f"logprobs={logprobs}, len(logprob_token_ids)={len(chosen)}.",
                "logprob_token_ids",
                len(chosen),
            )
    _check_logprob_count(s.get("prompt_logprobs"), "prompt_logprobs", "prompt", vocab)
    rows = s.get("prompt_logprob_token_ids")
    if rows is not None:
        _prompt_logprob_rows(rows, s.get("prompt_logprob_start"), vocab, max_model_len)
    elif s.get("prompt_logprob_start") is not None:
        raise ParameterError(
            "prompt_logprob_start requires prompt_logprob_token_ids.", "prompt_logprob_start", s["prompt_logprob_start"]
        )
    _check_in_vocab(list(s.get("logit_bias") or ()), "logit_bias", vocab)
    trace = s.get("trace_decode_token_ids")
    if trace is not None:
        _trace_checks(s, trace, vocab)
    _check_in_vocab(s["stop_token_ids"], "stop_token_ids", vocab)
    allowed = s.get("allowed_token_ids")
    if allowed is not None:
        if not allowed:
            raise ParameterError("allowed_token_ids is not None and empty!", "allowed_token_ids", allowed)
        if bad := _out_of_vocab(allowed, vocab):
            raise ParameterError("allowed_token_ids contains out-of-vocab token id!", "allowed_token_ids", bad)
    if rows is not None:  # checked by verify(), then refused by this engine (the V1 model runner)
        raise ParameterError(
            "prompt_logprob_token_ids requires the V2 model runner (VLLM_USE_V2_MODEL_RUNNER=1).",
            "prompt_logprob_token_ids",
        )
    if s.get("thinking_token_budget") is not None:
        raise ParameterError(
            "thinking_token_budget is set but reasoning_config is not configured. Please set --reasoning-parser "
            "and/or --reasoning-config to use thinking_token_budget."
        )
    if trace:
        raise ParameterError(
            "trace_decode_token_ids is set but trace replay is not enabled. Start the engine with "
            "--enable-trace-replay to use it."
        )


def _prompt_logprob_rows(rows: list[list[int]], start: int | None, vocab: int, max_model_len: int) -> None:
    """``SamplingParams._validate_logprobs`` on ``prompt_logprob_token_ids`` (a list of rows, -1 pads)."""
    shape = (len(rows), max(map(len, rows), default=0))
    if 0 in shape:
        raise ParameterError(
            "prompt_logprob_token_ids must be a non-empty integer array of shape [num_rows, num_ids].",
            "prompt_logprob_token_ids",
            "list",
        )
    if shape[0] > max_model_len - 1:
        raise ParameterError(
            f"prompt_logprob_token_ids has {shape[0]} rows, but a prompt has at most {max_model_len - 1} scored rows "
            "(max_model_len - 1).",
            "prompt_logprob_token_ids",
            shape[0],
        )
    if shape[1] > MAX_LOGPROBS:
        raise ParameterError(
            f"Requested {shape[1]} token ids per row in prompt_logprob_token_ids, which is greater than max allowed: "
            f"{MAX_LOGPROBS}. Set max_logprobs (--max-logprobs) to at least {shape[1]}.",
            "prompt_logprob_token_ids",
            shape[1],
        )
    padded = [t for row in rows for t in row] + ([-1] if any(len(row) < shape[1] for row in rows) else [])
    low, high = min(padded), max(padded)
    if low < -1 or high >= vocab:
        raise ParameterError(
            f"prompt_logprob_token_ids contain out-of-vocab token ids (-1 pads a row). Vocabulary size: {vocab}",
            "prompt_logprob_token_ids",
            [low, high],
        )
    if start is not None and start < 0:
        raise ParameterError("prompt_logprob_start must be non-negative.", "prompt_logprob_start", start)


def _trace_checks(s: dict[str, Any], trace: list[int], vocab: int) -> None:
    """``_validate_trace_replay`` (plain ``ValueError``s, then the vocabulary)."""
    problems = (
        (not trace, "trace_decode_token_ids must be a non-empty list."),
        (s["n"] != 1, "trace_decode_token_ids requires n=1."),
        (any(t < 0 for t in trace), "trace_decode_token_ids must contain non-negative integers."),
        (s.get("prompt_logprobs") is not None, "trace_decode_token_ids is not supported with prompt_logprobs."),
        (s.get("structured_outputs") is not None, "trace_decode_token_ids is not supported with structured outputs."),
        (
            s.get("repetition_detection") is not None,
            "trace_decode_token_ids is not supported with repetition_detection.",
        ),
        (
            s.get("thinking_token_budget") is not None,
            "trace_decode_token_ids is not supported with thinking_token_budget.",
        ),
        (bool(s["bad_words"]), "trace_decode_token_ids is not supported with bad_words."),
    )
    for failed, message in problems:
        if failed:
            raise EngineFailure(message)
    _check_in_vocab(trace, "trace_decode_token_ids", vocab)


def _check_prompt(n: int, high: int, max_model_len: int, vocab: int, media: tuple[str, int] | None = None) -> None:
    """The input processor's prompt checks on a prompt of ``n`` ids up to ``high``: length against the context,
    multimodal items (``media``: the first one's modality and length; a text-only model has no encoder cache, so
    any item is too large), then the vocabulary. A negative id never gets here: the request model refuses it
    first (``GenerateRequest._no_negative_ids``), so the largest id is the one to check."""
    if n > max_model_len:
        raise ParameterError(
            f"The decoder prompt (length {n}) is longer than the maximum model length of {max_model_len}. "
            "Make sure that `max_model_len` is no smaller than the number of text tokens."
        )
    if n == max_model_len:
        raise ParameterError(
            f"The decoder prompt (length {n}) plus the number of requested output tokens (at least 1) is longer than "
            f"the maximum model length of {max_model_len}. Make sure that `max_model_len` is no smaller than the "
            "number of text tokens (prompt + requested output tokens)."
        )
    if media is not None:
        modality, size = media
        raise ParameterError(
            f"The decoder prompt contains a(n) {modality} item with {size} embedding tokens, which exceeds the "
            "pre-allocated encoder cache size 0. Please reduce the input size or increase the encoder cache size by "
            "setting --limit-mm-per-prompt at startup."
        )
    if high >= vocab:
        raise ParameterError(f"Token id {high} is out of vocabulary")


def _prompt_array(ids: list[int]) -> npt.NDArray[np.int64] | None:
    """The prompt (non-negative ints, checked by pydantic) as int64 for the engine; None past int64."""
    try:
        return np.fromiter(ids, np.int64, len(ids))
    except OverflowError:
        return None


def parse_generate(raw: bytes, state: MockState, *, content_type: str | None, header_id: str | None) -> ValidRequest:
    """Validate a generate request like vLLM 0.32 (the body ``raw`` with its ``Content-Type``); raise
    ``RequestError`` otherwise. The id answered with is ``generate-tokens-`` and the ``X-Request-Id`` header
    (``header_id``), else the body's ``request_id``, else 16 random hex digits, as vLLM's route picks it."""
    request = _plain_request(raw, content_type) or _request(raw, content_type)
    request_id = f"generate-tokens-{header_id or request.request_id or _random_hex()}"
    try:
        return _accept(request, request_id, state)
    except (ParameterError, PlainError, EngineFailure) as exc:
        raise parameter_error(exc) from None


def _plain_request(raw: bytes, content_type: str | None) -> GenerateRequest | None:
    """The request read and validated in one pass (pydantic's own JSON reader), or None when that pass refuses it.

    The common body takes this path: no Python objects for the JSON first, then a second copy for the model. Its
    reader accepts a subset of what the standard library reads, with the same values, so what it accepts is the
    request ``_request`` gives (``tests/unit/test_mock_fastpaths.py`` checks both on generated bodies); anything
    it refuses goes through ``_request``, which words the refusal as vLLM does.
    """
    if not raw or not media_type_ok(content_type):
        return None
    try:
        return _REQUEST.validate_json(raw)
    except Exception:  # a refusal of any kind (validation, a vLLM check raised inside it): worded by _request
        return None


def _request(raw: bytes, content_type: str | None) -> GenerateRequest:
    """The body read as vLLM reads it (``read_json``), then validated as FastAPI validates a body."""
    body = read_json(raw, content_type)
    if body is None:
        raise format_validation_errors([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return _REQUEST.validate_python(body, from_attributes=True)
    except pydantic.ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise format_validation_errors(errors) from None
    except (ParameterError, PlainError) as exc:
        raise parameter_error(exc) from None


def _random_hex() -> str:
    """16 random hex digits, like ``secrets.token_hex(8)`` (a request id, not a secret) without a syscall."""
    return f"{_RANDOM.getrandbits(64):016x}"


def _accept(request: GenerateRequest, request_id: str, state: MockState) -> ValidRequest:
    """Layers 3-4 past pydantic: the route (model, ``n``, MessagePack range, default ``max_tokens``), then the
    engine (``verify``, the prompt, ``routed_experts_prompt_start``)."""
    cfg = state.config
    s = request.sampling_params.values
    ids = request.token_ids
    vocab = state.tokenizer.vocab_size
    if request.model not in (None, cfg.model) and request.model != "":
        raise RequestError(
            404, f"The model `{request.model}` does not exist. Valid aliases: {cfg.model}.", "NotFoundError", "model"
        )
    if s["n"] > cfg.max_num_seqs:
        raise PlainError(
            f"sampling_params.n must be at most the server's max_num_seqs ({cfg.max_num_seqs}), got {s['n']}."
        )
    if request.stream and s.get("prompt_logprob_token_ids") is not None:
        raise PlainError("prompt_logprob_token_ids are not available when stream=true.")
    low, high = MSGPACK_INT_RANGE
    asked = request.sampling_params.given
    given = {k: s[k] for k in asked if k in s}  # the defaults fit
    if not _ints_fit([given, request.kv_transfer_params, request.ec_transfer_params], low, high):
        raise PlainError("can't serialize ints < -2**63 or > 2**64 - 1")
    max_len = state.max_model_len
    given_max_tokens = "max_tokens" in asked
    if not given_max_tokens and len(ids) > max_len:
        raise PlainError(f"Input length ({len(ids)}) exceeds model's maximum context length ({max_len}).")
    _engine_checks(s, vocab, max_len)
    prompt_array = _prompt_array(ids)
    items = request.features.mm_placeholders.items() if request.features is not None else ()
    media = next(((modality, ranges[0].length) for modality, ranges in items if ranges), None)
    high = int(np.maximum.reduce(prompt_array)) if prompt_array is not None else max(ids)
    _check_prompt(len(ids), high, max_len, vocab, media)
    start = s["routed_experts_prompt_start"]
    if not 0 <= start <= len(ids):
        raise ParameterError(
            f"routed_experts_prompt_start must be between 0 and the prompt length ({len(ids)}), inclusive.",
            "routed_experts_prompt_start",
            start,
        )
    room = max_len - len(ids)
    max_tokens = s["max_tokens"] if given_max_tokens else None
    if max_tokens is None:
        max_tokens = room
        if s["min_tokens"] > max_tokens:
            raise ParameterError(
                f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {s['min_tokens']}."
            )
    budget = min(max_tokens, room)
    seed = s.get("seed")
    params = [
        SamplingParams(
            max_tokens=budget,
            temperature=s["temperature"],
            top_p=s["top_p"],
            top_k=max(s["top_k"], 0),
            seed=seed if seed is not None else cfg.seed,
            min_tokens=min(s["min_tokens"], budget),
            stop_token_ids=frozenset(s["stop_token_ids"]),
            ignore_eos=s["ignore_eos"],
            choice_index=i,
        )
        for i in range(s["n"])
    ]
    logprobs = s.get("logprobs")
    return ValidRequest(
        ids=ids,
        sampling=s,
        params=params,
        n_logprobs=logprobs,
        prompt_array=prompt_array,
        request_id=request_id,
        text_mode=request.output_mode == "text" and cfg.vllm_profile == "vllm-0.32",
        stream=request.stream is True,
        return_token_ids=request.return_token_ids is True,
    )
