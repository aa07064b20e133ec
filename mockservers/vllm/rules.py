"""vLLM 0.32 request rules for ``POST /inference/v1/generate``: what the mock accepts, and the error of the rest.

The error texts are vLLM's: pydantic's validation errors for the request model (``1 validation error:\n  {...}``,
HTTP 400, ``param`` the location) and ``SamplingParams._verify_args``' messages for values of the right type out
of range.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson

from mockservers.app import MockState
from mockservers.engine import SamplingParams
from mockservers.protocol import RequestError, context_error, id_array, ids_in_range, is_int, is_number

MAX_LOGPROBS = 20


def pydantic_error(kind: str, loc: str, msg: str, value: Any, ctx: dict[str, Any] | None = None) -> RequestError:
    """A 400 in vLLM's validation-error format (``N validation error(s):\\n  {...}``)."""
    if isinstance(value, list):
        shown: Any = f"<list of {len(value)} items>"
    elif isinstance(value, dict):
        shown = "<dict>"
    else:
        shown = value
    detail: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": shown}
    if ctx:
        detail["ctx"] = ctx
    return RequestError(400, f"1 validation error:\n  {detail!r}", "Bad Request", loc)


def _sp_int(sp: dict[str, Any], key: str, default: int | None, *, nullable: bool = True) -> int | None:
    value = sp.get(key, default)
    if value is None:
        if nullable:
            return None
        value = default
    if not is_int(value):
        raise pydantic_error("int_type", f"body.sampling_params.{key}", "Input should be a valid integer", value)
    return cast(int, value)


def _sp_float(sp: dict[str, Any], key: str, default: float) -> float:
    value = sp.get(key, default)
    if value is None:
        return default
    if not is_number(value):
        raise pydantic_error("float_type", f"body.sampling_params.{key}", "Input should be a valid number", value)
    return float(value)


def json_error(raw: bytes, exc: orjson.JSONDecodeError) -> RequestError:
    """FastAPI's answer to a body that is not JSON: one ``json_invalid`` error at the byte position."""
    return RequestError(
        400,
        f"1 validation error:\n  {{'type': 'json_invalid', 'loc': ('body', {exc.pos}), 'msg': 'JSON decode error'}}",
        "Bad Request",
        "body",
    )


def _bad(message: str) -> RequestError:
    return RequestError(400, message, "BadRequestError", None)


def parse_generate(
    body: Any, state: MockState
) -> tuple[list[int], dict[str, Any], list[SamplingParams], int | None, npt.NDArray[np.int64] | None]:
    """Validate a generate body like vLLM does.

    Returns the prompt ids, the raw sampling dict, per-choice params, the logprobs count (None: not requested) and
    the prompt as a checked int64 array (``0 <= id < vocab``, for ``Engine.prefix``) when it was built.
    """
    if not isinstance(body, dict):
        raise pydantic_error("model_attributes_type", "body", "Input should be a valid dictionary", body)
    ids = body.get("token_ids")
    if "token_ids" not in body:
        raise pydantic_error("missing", "body.token_ids", "Field required", body)
    if not isinstance(ids, list):
        raise pydantic_error("list_type", "body.token_ids", "Input should be a valid list", ids)
    if not ids:
        raise pydantic_error(
            "too_short",
            "body.token_ids",
            "List should have at least 1 item after validation, not 0",
            ids,
            {"field_type": "List", "min_length": 1, "actual_length": 0},
        )
    vocab = state.tokenizer.vocab_size
    arr = id_array(ids, vocab)
    in_vocab = arr is not None or ids_in_range(ids, vocab)
    for i, t in enumerate(() if in_vocab else ids):
        if not is_int(t):
            raise pydantic_error("int_type", f"body.token_ids.{i}", "Input should be a valid integer", t)
        if t < 0:
            raise pydantic_error(
                "greater_than_equal", f"body.token_ids.{i}", "Input should be greater than or equal to 0", t, {"ge": 0}
            )
    sp = body.get("sampling_params")
    if "sampling_params" not in body:
        raise pydantic_error("missing", "body.sampling_params", "Field required", body)
    if not isinstance(sp, dict):
        raise pydantic_error("dict_type", "body.sampling_params", "Input should be a valid dictionary", sp)
    for key in ("stream",):
        if body.get(key) is not None and not isinstance(body.get(key), bool):
            raise pydantic_error("bool_type", f"body.{key}", "Input should be a valid boolean", body.get(key))

    n = _sp_int(sp, "n", 1, nullable=False)
    max_tokens = _sp_int(sp, "max_tokens", None)
    min_tokens = _sp_int(sp, "min_tokens", 0, nullable=False)
    top_k = _sp_int(sp, "top_k", 0, nullable=False)
    seed = _sp_int(sp, "seed", None)
    logprobs = _sp_int(sp, "logprobs", None)
    _sp_int(sp, "prompt_logprobs", None)
    start = _sp_int(sp, "routed_experts_prompt_start", 0, nullable=False)
    temperature = _sp_float(sp, "temperature", 1.0)
    top_p = _sp_float(sp, "top_p", 1.0)
    ignore_eos = sp.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise pydantic_error(
            "bool_type", "body.sampling_params.ignore_eos", "Input should be a valid boolean", ignore_eos
        )
    stop_ids = sp.get("stop_token_ids") or []
    if not isinstance(stop_ids, list) or not all(is_int(t) for t in stop_ids):
        raise pydantic_error(
            "list_type", "body.sampling_params.stop_token_ids", "Input should be a valid list", stop_ids
        )

    assert n is not None
    assert min_tokens is not None
    assert top_k is not None
    assert start is not None
    if n < 1:
        raise _bad(f"n must be at least 1, got {n}.")
    if temperature < 0:
        raise _bad(f"temperature must be non-negative, got {temperature}.")
    if not 0 < top_p <= 1:
        raise _bad(f"top_p must be in (0, 1], got {top_p}.")
    if top_k < -1:
        raise _bad(f"top_k must be 0 (disable), or at least 1, got {top_k}.")
    if max_tokens is not None and max_tokens < 1:
        raise _bad(f"max_tokens must be at least 1, got {max_tokens}.")
    if min_tokens < 0:
        raise _bad(f"min_tokens must be greater than or equal to 0, got {min_tokens}.")
    if max_tokens is not None and min_tokens > max_tokens:
        raise _bad(f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}.")
    if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS and logprobs != -1:
        raise _bad(f"Requested sample logprobs of {logprobs}, which is greater than max allowed: {MAX_LOGPROBS}")
    if start < 0:
        raise _bad(f"routed_experts_prompt_start must be non-negative, got {start}.")

    model = body.get("model")
    if model not in (None, "", state.config.model):
        raise RequestError(
            404, f"The model `{model}` does not exist. Valid aliases: {state.config.model}.", "NotFoundError", "model"
        )
    for t in () if in_vocab else ids:
        if t >= vocab:
            raise _bad(f"Token id {t} is out of vocabulary")
    room = state.max_model_len - len(ids)
    if room < 1:
        raise _bad(context_error(len(ids), state.max_model_len))
    budget = min(max_tokens if max_tokens is not None else room, room)
    params = [
        SamplingParams(
            max_tokens=budget,
            temperature=temperature,
            top_p=top_p,
            top_k=max(top_k, 0),
            seed=seed if seed is not None else state.config.seed,
            min_tokens=min(min_tokens, budget),
            stop_token_ids=frozenset(stop_ids),
            ignore_eos=ignore_eos,
            choice_index=i,
        )
        for i in range(n)
    ]
    if logprobs == -1:
        logprobs = MAX_LOGPROBS
    return ids, sp, params, logprobs, arr
