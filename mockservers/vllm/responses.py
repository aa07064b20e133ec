"""vLLM response bodies: the choices, logprobs (written as bytes on the common path), prompt logprobs, SSE chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mockservers import routing
from mockservers.app import MockState
from mockservers.engine import ROUTE_BLOCK_BYTES, Completion, RoutePlan, prefix_states
from mockservers.faults import FaultSpec, apply_content_fault
from mockservers.vllm.rules import ValidRequest

_LP_MARKER = "\u2063mock-logprobs\u2063"


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


def _value_texts(values: list[int] | list[float]) -> tuple[list[bytes], int]:
    """orjson's text of each value (exactly what ``orjson.dumps`` writes for it inside an object) and their total
    length, from one encoding of the list."""
    if not values:
        return [], 0
    text = orjson.dumps(values)
    return text[1:-1].split(b","), len(text) - len(values) - 1


_ENTRIES_PER_CHUNK = 2048
"""Logprob entries per chunk of text (about 300 kB): memory the allocator reuses from one chunk to the next."""


@dataclass(frozen=True)
class _Layout:
    """The JSON text of one logprob entry: ``head`` (``first`` for entry 0, ``rest`` with the separating comma after
    it), then for each column its value's text and the constant text after it."""

    first: bytes
    rest: bytes
    columns: tuple[tuple[str, bytes], ...]


_LAYOUTS = {
    "vllm-0.32": _Layout(
        b'{"token_id":',
        b',{"token_id":',
        (
            ("ids", b',"logprob":'),
            ("lps", b',"rank":'),
            ("ranks", b',"top_logprobs":[{"token_id":'),
            ("ids", b',"logprob":'),
            ("lps", b',"rank":'),
            ("ranks", b"}]}"),
        ),
    ),
    "prime-rl": _Layout(
        b'{"token":"token_id:',
        b',{"token":"token_id:',
        (
            ("ids", b'","logprob":'),
            ("lps", b',"bytes":null,"top_logprobs":[{"token":"token_id:'),
            ("ids", b'","logprob":'),
            ("lps", b',"bytes":null}]}'),
        ),
    ),
}


def _entries(layout: _Layout, first: bool, texts: dict[str, list[bytes]], start: int, stop: int) -> bytes:
    """Entries ``start .. stop-1`` (``first``: entry ``start`` opens the list, no comma before it).

    Built with slice assignments and one join, so 32k entries cost a few milliseconds instead of 64k dicts
    through orjson.
    """
    n = stop - start
    width = 1 + 2 * len(layout.columns)
    parts: list[bytes] = [b""] * (width * n)
    parts[0::width] = [layout.rest] * n
    if first:
        parts[0] = layout.first
    for j, (name, sep) in enumerate(layout.columns):
        parts[1 + 2 * j :: width] = texts[name][start:stop]
        parts[2 + 2 * j :: width] = [sep] * n
    return b"".join(parts)


def _columns(profile: str, c: Completion) -> tuple[_Layout, dict[str, list[bytes]], dict[str, int]]:
    """The entry layout of ``profile``, the JSON text of each value its columns take from ``c`` and the total length
    of each column's texts."""
    columns: dict[str, list[int] | list[float]] = {"ids": c.token_ids, "lps": c.logprobs}
    if profile == "vllm-0.32":
        columns["ranks"] = c.ranks
    texts: dict[str, list[bytes]] = {}
    lengths: dict[str, int] = {}
    for name, values in columns.items():
        texts[name], lengths[name] = _value_texts(values)
    return _LAYOUTS["vllm-0.32" if profile == "vllm-0.32" else "prime-rl"], texts, lengths


def fast_logprobs_stream(profile: str, c: Completion) -> routing.Deferred:
    """The ``logprobs`` JSON of a choice with one top logprob (the sampled token), written directly as bytes and
    made in chunks of entries while the body is written (``routing.Deferred``).

    Same keys, order and number text as the dicts of ``_logprobs_prime`` / ``_logprobs_032`` (tokens mode)
    encoded by orjson; the tests compare the two byte for byte.
    """
    layout, texts, lengths = _columns(profile, c)
    n = len(c.token_ids)
    size = len(b'{"content":[]}')
    if n:
        size += len(layout.first) + (n - 1) * len(layout.rest)
        size += sum(lengths[name] + n * len(sep) for name, sep in layout.columns)

    def chunks() -> Iterator[bytes]:
        yield b'{"content":['
        for start in range(0, n, _ENTRIES_PER_CHUNK):
            yield _entries(layout, start == 0, texts, start, min(start + _ENTRIES_PER_CHUNK, n))
        yield b"]}"

    return routing.Deferred(size, chunks)


def fast_logprobs(profile: str, c: Completion) -> bytes:
    """``fast_logprobs_stream``'s text, made whole (directly: a small response has no use for chunks)."""
    layout, texts, _ = _columns(profile, c)
    return b'{"content":[' + _entries(layout, True, texts, 0, len(c.token_ids)) + b"]}"


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


def small_body(state: MockState, call: ValidRequest, completions: list[Completion], fault: FaultSpec) -> bytes | None:
    """The whole body written directly as bytes, for the common small case: the ``prime-rl`` profile, a dense
    model, not streamed, no fault, no prompt logprobs, at most one top logprob. The same bytes as orjson gives for
    ``build_response``'s object (``tests/unit/test_mock_fastpaths.py`` compares them); None when the case does not
    apply."""
    cfg = state.config
    simple = cfg.vllm_profile == "prime-rl" and not cfg.moe_layers and not call.stream and not call.text_mode
    if (
        not simple
        or (call.n_logprobs or 0) > 1
        or fault.edits_content
        or call.sampling.get("prompt_logprobs") is not None
    ):
        return None
    parts = [b'{"request_id":', orjson.dumps(call.request_id), b',"model":null,"created":null,"choices":[']
    n_out = 0
    for index, c in enumerate(completions):
        lp = b"null" if call.n_logprobs is None else fast_logprobs("prime-rl", c)
        parts += [
            b',{"index":' if index else b'{"index":',
            b"%d" % index,
            b',"logprobs":',
            lp,
            b',"finish_reason":',
            orjson.dumps(c.finish_reason),
            b',"token_ids":',
            orjson.dumps(c.token_ids),
            b',"routed_experts":null}',
        ]
        n_out += len(c.token_ids)
    n_in = len(call.ids)
    parts.append(
        b'],"prompt_logprobs":null,"kv_transfer_params":null,"usage":{"prompt_tokens":%d,"total_tokens":%d,'
        b'"completion_tokens":%d,"prompt_tokens_details":null}}' % (n_in, n_in + n_out, n_out)
    )
    return b"".join(parts)


def build_response(
    state: MockState, call: ValidRequest, completions: list[Completion], fault: FaultSpec
) -> tuple[dict[str, Any], list[tuple[str, Sequence[routing.Piece]]]]:
    """The response object and the raw pieces to splice into its encoding (``routing.splice``)."""
    cfg = state.config
    profile = cfg.vllm_profile
    sp = call.sampling
    n_top = max(call.n_logprobs or 0, 1)
    # One top logprob, no fault reshaping the lists, not streamed: the logprob JSON is written as bytes.
    fast_lp = n_top == 1 and not call.text_mode and not call.stream and not fault.edits_content
    spliced: list[tuple[str, Sequence[routing.Piece]]] = []
    choices = []
    n_ids = len(call.ids)
    for index, c in enumerate(completions):
        lp: Any = None
        if call.n_logprobs is not None:
            if fast_lp and cfg.moe_layers:
                # The body is spliced anyway (routing): the logprob text joins it there, copied once.
                marker = f"{_LP_MARKER}{index}"
                long = len(c.token_ids) > _ENTRIES_PER_CHUNK
                spliced.append((marker, (fast_logprobs_stream(profile, c) if long else fast_logprobs(profile, c),)))
                lp = marker
            elif fast_lp:
                lp = orjson.Fragment(fast_logprobs(profile, c))  # orjson copies it in; no marker to look for
            else:
                builder = _logprobs_032 if profile == "vllm-0.32" else _logprobs_prime
                lp = builder(state, c, n_top, call.text_mode)
        re_value: Any = None
        if cfg.moe_layers:
            start = int(sp.get("routed_experts_prompt_start") or 0)
            plan = RoutePlan.of([*call.ids, *c.token_ids], start, cfg.moe_layers, cfg.moe_top_k, cfg.num_experts)
            marker = f"{routing.PLACEHOLDER}{index}"
            payload: routing.Piece
            if plan.nbytes > ROUTE_BLOCK_BYTES:  # made block by block while the body is written (``routing.Deferred``)
                payload = routing.base64_stream(plan, plan.nbytes, plan.blocks, npy=profile == "vllm-0.32")
            else:  # one block: no use for the deferred machinery
                arr = plan.rows(0, plan.shape[0])
                payload = routing.npy_base64(arr) if profile == "vllm-0.32" else routing.raw_base64(arr)
            spliced.append((marker, (b'"', payload, b'"')))
            if profile == "vllm-0.32":
                re_value = marker
            else:
                re_value = routing.routed_object(plan, min(start, n_ids + len(c.token_ids) - 1))
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
            if call.text_mode:
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
        if fault.edits_content:
            apply_content_fault(fault, choice, ids_key="token_ids", logprobs_key="logprobs")
        choices.append(choice)
    n_out = sum(len(c.token_ids) for c in completions)
    usage: dict[str, Any] = {
        "prompt_tokens": n_ids,
        "total_tokens": n_ids + n_out,
        "completion_tokens": n_out,
        "prompt_tokens_details": None,
    }
    plp = None
    if sp.get("prompt_logprobs") is not None:
        plp = prompt_logprobs(state, call.ids, int(sp["prompt_logprobs"]))  # 0: the prompt token alone
    resp: dict[str, Any]
    if profile == "vllm-0.32":
        usage["completion_tokens_details"] = None
        resp = {
            "request_id": call.request_id,
            "model": cfg.model,
            "created": int(time.time()),
            "usage": usage,
            "prompt_logprobs": plp,
            "prompt_token_id_logprobs": None,
            "prompt_token_ids": call.ids if call.return_token_ids else None,
            "mm_placeholders": None,
            "metrics": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "output_mode": "text" if call.text_mode else "tokens",
            "choices": choices,
        }
    else:
        resp = {
            "request_id": call.request_id,
            "model": None,
            "created": None,
            "choices": choices,
            "prompt_logprobs": plp,
            "kv_transfer_params": None,
            "usage": usage,
        }
    return resp, spliced


def stream_chunks(state: MockState, resp: dict[str, Any], completions: list[Completion]) -> Iterator[tuple[int, bytes]]:
    """The SSE events of a streamed response: (position in its choice, ``data: {...}`` bytes), one per token and
    choice (routed experts are not sent on the stream path); the caller adds ``data: [DONE]``."""
    profile = state.config.vllm_profile
    for index, c in enumerate(completions):
        full = resp["choices"][index]
        content = (full.get("logprobs") or {}).get("content")
        for i, tid in enumerate(c.token_ids):
            last = i == len(c.token_ids) - 1
            chunk_choice: dict[str, Any] = {"index": index, "finish_reason": c.finish_reason if last else None}
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
            yield i, b"data: " + orjson.dumps(chunk) + b"\n\n"
