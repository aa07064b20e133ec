"""Dynamo frontend response bodies: chat and completion choices, logprobs, ``nvext``, usage, SSE chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mockservers import routing
from mockservers.app import MockState
from mockservers.dynamo.rules import worker_id
from mockservers.engine import Completion
from mockservers.faults import FaultSpec, apply_content_fault, migrated_cut

EXTRA_FIELDS = ("worker_id", "timing", "routed_experts", "engine_data", "completion_token_ids")
"""The ``nvext.extra_fields`` names the frontend answers; others are accepted and ignored."""


@dataclass(frozen=True)
class Answer:
    """One generated completion and everything its body needs (built once by the handler)."""

    prompt: list[int]
    completion: Completion
    nvext: dict[str, Any]
    """The request's ``nvext`` (``extra_fields`` decide what the response's ``nvext`` carries)."""
    logprobs: dict[str, Any] | None
    """The choice's ``logprobs`` (chat: ``{content, refusal}``), faults applied; None when not asked for."""
    engine_logprobs: bool
    """Whether the worker returns logprobs in ``engine_data`` (asked for, and a worker that has them)."""
    skip_special_tokens: bool
    t0: float
    """When the request arrived (``time.time()``)."""
    t_first: float
    """When its first token was ready."""
    rid: str
    created: int


def _f32_repr(value: float) -> float:
    """The double a client reads when the frontend prints a float32 with its shortest representation."""
    return float(str(np.float32(value)))


def chat_logprobs(state: MockState, c: Completion, n_top: int, as_ids: bool) -> dict[str, Any]:
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
        # (token "", bytes null) and left out of the message text (``shown_ids``; checked against the real
        # frontend by tests/real/test_dynamo_worker_differential.py).
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


def shown_ids(c: Completion) -> list[int]:
    """The ids whose text the chat message shows: all but the stop token a request ended on (1.6.1)."""
    return c.token_ids[:-1] if c.finish_reason == "stop" and c.token_ids else c.token_ids


def routed_experts(
    state: MockState, nvext: dict[str, Any], ids: list[int]
) -> tuple[dict[str, Any] | None, bytes | None]:
    cfg = state.config
    if not cfg.moe_layers or cfg.routed_experts_mode == "absent" or cfg.dynamo_backend != "vllm":
        return None, None
    start = int(nvext.get("routed_experts_prompt_start") or 0) if cfg.routed_experts_mode == "trimmed" else 0
    arr = state.engine.routed_experts(ids, start, cfg.moe_layers, cfg.moe_top_k, cfg.num_experts)
    return routing.routed_object(arr, min(start, max(len(ids) - 1, 0))), routing.raw_base64(arr)


def usage(state: MockState, prompt_len: int, n_out: int, completions: bool = False) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_len,
        "completion_tokens": n_out,
        "total_tokens": prompt_len + n_out,
    }
    if state.config.dynamo_backend != "sample":
        details: dict[str, Any] = {"audio_tokens": None, "cached_tokens": 0} if completions else {"cached_tokens": 0}
        usage["prompt_tokens_details"] = details
    return usage


def chat_usage(state: MockState, prompt_len: int, c: Completion, fault: FaultSpec) -> dict[str, Any]:
    """``usage`` of a chat answer: an emptied completion (fault ``completion_ids=empty``) counts no tokens; after a
    migration (``migrated_after``) the prompt count is the last worker's prompt, the completion count all tokens."""
    if fault.completion_ids == "empty":
        return usage(state, prompt_len, 0)
    return usage(state, prompt_len + migrated_cut(fault, len(c.token_ids)), len(c.token_ids))


def response_nvext(
    state: MockState, ans: Answer, routed: dict[str, Any] | None, fault: FaultSpec
) -> dict[str, Any] | None:
    """The response's ``nvext``: what ``nvext.extra_fields`` asked for and the worker provides (None: nothing)."""
    extra = [x for x in (ans.nvext.get("extra_fields") or ()) if x in EXTRA_FIELDS]
    if not extra:
        return None
    backend = state.config.dynamo_backend
    c = ans.completion
    out: dict[str, Any] = {}
    if "worker_id" in extra:
        wid = worker_id(state)
        out["worker_id"] = {"prefill_worker_id": wid, "decode_worker_id": wid}
    if "timing" in extra:
        now = time.time()
        out["timing"] = {
            "request_received_ms": int(ans.t0 * 1000),
            "prefill_wait_time_ms": 0.0,
            "prefill_time_ms": round((ans.t_first - ans.t0) * 1000, 6),
            "ttft_ms": round((ans.t_first - ans.t0) * 1000, 6),
            "total_time_ms": round((now - ans.t0) * 1000, 6),
        }
    if "routed_experts" in extra and routed is not None and backend == "vllm":
        out["routed_experts"] = routed
    if "engine_data" in extra and backend == "vllm":
        # After a migration (fault ``migrated_after``) the frontend returns the last worker's engine_data: its
        # prompt is the original one plus the tokens generated before, its ids and logprobs the rest.
        last_prompt = [*ans.prompt, *c.token_ids[: migrated_cut(fault, len(c.token_ids))]]
        engine: dict[str, Any] = {
            "prompt_token_ids": last_prompt,
            "kv_cache_hit": {"prompt_tokens": len(last_prompt), "reused_tokens": 0},
            "completion_token_ids": c.token_ids,
            "finished": True,
        }
        if ans.engine_logprobs:
            engine["completion_logprobs"] = c.logprobs
        if routed is not None:
            engine["routed_experts"] = routed
        apply_content_fault(
            fault, engine, ids_key="completion_token_ids", logprobs_key="completion_logprobs", source="engine"
        )
        out["engine_data"] = engine
    if "completion_token_ids" in extra:
        out["completion_token_ids"] = c.token_ids
        apply_content_fault(fault, out, ids_key="completion_token_ids")
    return out or None


def chat_body(state: MockState, ans: Answer, fault: FaultSpec) -> bytes:
    """A non-streamed chat completion."""
    c = ans.completion
    routed, payload = routed_experts(state, ans.nvext, [*ans.prompt, *c.token_ids])
    resp: dict[str, Any] = {
        "id": ans.rid,
        "choices": [
            {
                "index": 0,
                "message": {
                    # 1.6.1 sends null, not "", when the completion shows no text
                    "content": state.tokenizer.decode(shown_ids(c), skip_special_tokens=ans.skip_special_tokens)
                    or None,
                    "refusal": None,
                    "role": "assistant",
                },
                "finish_reason": c.finish_reason,
                "logprobs": ans.logprobs,
            }
        ],
        "created": ans.created,
        "model": state.config.model,
        "object": "chat.completion",
        "usage": chat_usage(state, len(ans.prompt), c, fault),
    }
    nv = response_nvext(state, ans, routed, fault)
    if nv is not None:
        resp["nvext"] = nv
    return routing.dumps(resp, payload if nv is not None else None)


def chat_events(state: MockState, ans: Answer, fault: FaultSpec, include_usage: bool) -> Iterator[tuple[int, bytes]]:
    """SSE as the frontend sends it: (token position, ``data: ...`` event), one chunk per token; ``nvext`` and the
    finish reason on the last one (the mocker worker: on an extra empty chunk); then usage if asked, and
    ``[DONE]``. The caller sets ``ans.t_first`` semantics by sleeping before position 0."""
    cfg = state.config
    c = ans.completion
    head = {"id": ans.rid}
    tail = {"created": ans.created, "model": cfg.model, "object": "chat.completion.chunk"}
    lp = ans.logprobs
    text = ""
    mocker = cfg.dynamo_backend == "mocker"
    n = len(c.token_ids)
    for i in range(n):
        new_text = state.tokenizer.decode(c.token_ids[: i + 1], skip_special_tokens=ans.skip_special_tokens)
        delta: dict[str, Any] = {"content": new_text[len(text) :]}
        text = new_text
        if i == 0:
            delta["role"] = "assistant"
        last = i == n - 1
        chunk_lp = {"content": [lp["content"][i]], "refusal": None} if lp and i < len(lp["content"]) else None
        choice = {"index": 0, "delta": delta, "finish_reason": c.finish_reason if last and not mocker else None}
        choice["logprobs"] = chunk_lp
        chunk: dict[str, Any] = {**head, "choices": [choice], **tail}
        payload = None
        if last and not mocker:
            routed, payload = routed_experts(state, ans.nvext, [*ans.prompt, *c.token_ids])
            nv = response_nvext(state, ans, routed, fault)
            if nv is not None:
                chunk["nvext"] = nv
            else:
                payload = None
        yield i, b"data: " + routing.dumps(chunk, payload) + b"\n\n"
    if mocker:
        final = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": c.finish_reason, "logprobs": None}]}
        yield n, b"data: " + orjson.dumps({**final, **tail}) + b"\n\n"
    if include_usage:
        counts = {**head, "choices": [], **tail, "usage": usage(state, len(ans.prompt), n)}
        yield n, b"data: " + orjson.dumps(counts) + b"\n\n"
    yield n, b"data: [DONE]\n\n"


def completion_body(state: MockState, ans: Answer, n_logprobs: int | None, fault: FaultSpec) -> bytes:
    """A non-streamed ``/v1/completions`` answer."""
    c = ans.completion
    tok = state.tokenizer
    choice: dict[str, Any] = {
        "text": tok.decode(c.token_ids, skip_special_tokens=ans.skip_special_tokens),
        "index": 0,
    }
    if n_logprobs is not None and state.config.dynamo_backend != "mocker":
        tops = []
        for i, tid in enumerate(c.token_ids):
            entry = {tok.piece(t): v for t, v, r in state.engine.candidates(c.keys[i], c.peaks[i], n_logprobs)}
            entry.setdefault(tok.piece(tid), c.logprobs[i])
            tops.append(entry)
        choice["logprobs"] = {
            "tokens": [tok.piece(t) for t in c.token_ids],
            "token_logprobs": [_f32_repr(v) for v in c.logprobs],
            "top_logprobs": tops,
            "text_offset": [],
        }
    choice["finish_reason"] = c.finish_reason
    routed, payload = routed_experts(state, ans.nvext, [*ans.prompt, *c.token_ids])
    resp: dict[str, Any] = {
        "id": ans.rid,
        "choices": [choice],
        "created": ans.created,
        "model": state.config.model,
        "system_fingerprint": None,
        "object": "text_completion",
        "usage": usage(state, len(ans.prompt), len(c.token_ids), completions=True),
    }
    nv = response_nvext(state, ans, routed, fault)
    if nv is not None:
        resp["nvext"] = nv
    return routing.dumps(resp, payload if nv is not None else None)
