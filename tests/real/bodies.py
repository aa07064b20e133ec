"""Pieces the generated differential suites use: values of every JSON kind, a JSON writer that can repeat keys
and pretty-print, the key structure of a response, and a strategy of vLLM generate request bodies."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

WRONG = [
    None, True, False, 0, 1, -1, 2, 7, 20, 21, 128, 129, 255, 256, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1,
    2**32 - 1, 2**32, 2**63, 2**64 - 1, -(2**63), 1.5, 0.0, -0.0, 1e-7, 1e-50, 0.5, 2.0, 2.5, -2.5, 100.0, 1e39,
    1.0, "a", "", " ", "1", "a\"b\\c", [], [1], ["a"], [[1]], {}, {"a": 1},
]  # fmt: skip
"""Values of every JSON kind and across the integer widths and float ranges the servers check."""


def encode(value: Any, indent: str | None = None, level: int = 0) -> str:
    """JSON text; a list of pairs is an object (so a key may repeat); ``indent`` pretty-prints."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        items = [f"{json.dumps(k)}:{encode(v, indent, level + 1)}" for k, v in value]
        return _join("{", items, "}", indent, level)
    if isinstance(value, dict):
        return encode(list(value.items()), indent, level) if value else "{}"
    if isinstance(value, list):
        return _join("[", [encode(v, indent, level + 1) for v in value], "]", indent, level)
    return json.dumps(value, ensure_ascii=False)


def _join(open_: str, items: list[str], close: str, indent: str | None, level: int) -> str:
    if indent is None or not items:
        return open_ + ",".join(items) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + indent * level + close


def shape(value: Any) -> Any:
    """The key structure of a JSON value: objects by their keys (recursively), lists by the set of their items'
    shapes, scalars as their JSON kind."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", frozenset(shape(v) for v in value))
    return "null" if value is None else type(value).__name__


# ---- vLLM generate request bodies (tests/real/test_vllm_generated_differential.py, the mock's fast path test) ----
SAMPLING: dict[str, list[Any]] = {
    "n": [1, 2, 0, -1],
    "max_tokens": [1, 2, 3, 0, -1, 5000],
    "min_tokens": [0, 1, 2, 5, -1],
    "temperature": [0, 0.0, 0.7, 1, 2.5, -0.5, 1e-7],
    "top_p": [1, 1.0, 0.5, 0, 0.0, 1.5, -0.1],
    "top_k": [0, -1, 1, 5, -2],
    "min_p": [0, 0.1, 1, 1.5, -0.1],
    "seed": [0, 7, -1, 2**63, 2**64],
    "presence_penalty": [0, 1.5, 2, 2.5, -2.5],
    "frequency_penalty": [0, -2, 2.5],
    "repetition_penalty": [1, 1.2, 0, -1],
    "logprobs": [None, 0, 1, 2, 20, 21, -1, -2],
    "prompt_logprobs": [None, 0, 1, 21, -1, -2],
    "stop_token_ids": [[], [2303], [1, 2], [-1], "x"],
    "stop": [[], ["x"], "x", 5],
    "ignore_eos": [True, False],
    "skip_special_tokens": [True, False],
    "spaces_between_special_tokens": [True, False],
    "include_stop_str_in_output": [True, False],
    "detokenize": [True, False],
    "truncate_prompt_tokens": [1, 2, -1, 0, 100000],
    "logit_bias": [{}, {"5": 1.0}, {"x": 1}, {"5": 200}],
    "allowed_token_ids": [[], [5, 6], [-1], [999999]],
    "bad_words": [[], ["x"]],
    "output_kind": [0, 1, 2, 5],
    "routed_experts_prompt_start": [0, 1, 2, -1, 7],
    "watermarking": [None, True, False],
    "stream_interval": [None, 1, 0],
    "prompt_logprob_start": [None, 0, -1],
    "prompt_logprob_token_ids": [None, [[1]], [], [[-2]]],
    "logprob_token_ids": [None, [], [-1], [999999], list(range(129))],
    "flat_logprobs": [False, True],
    "skip_clone": [False, True],
    "output_text_buffer_length": [0, 5],
    "structured_outputs": [None, {}, {"regex": "a", "choice": ["x"]}],
    "extra_args": [None, {}, {"a": 1}, {"a": 2**70}, {"a": [-(2**63) - 1]}],
    "skip_reading_prefix_cache": [None, True],
    "thinking_token_budget": [None, -1, 5, -2, 1.5],
    "repetition_detection": [None, {}, {"max_pattern_size": -1}, {"max_pattern_size": 2, "min_count": 1}],
    "trace_decode_token_ids": [None, [1], [], [-1]],
    "foo_bar": [1],
}
_IMAGE = {"mm_hashes": {"image": ["a"]}, "mm_placeholders": {"image": [{"offset": 0, "length": 1}]}}
MM_FEATURES: list[Any] = [
    _IMAGE,  # a text-only model has no encoder cache for it
    {**_IMAGE, "kwargs_data": {"image": []}},
    {**_IMAGE, "mm_metadata": {"image": ["x"]}},
    {**_IMAGE, "mm_placeholders": {"image": [{"offset": 1, "length": 9}]}},
    {
        "mm_hashes": {"image": ["a", "b"]},
        "mm_placeholders": {"image": [{"offset": 0, "length": 2}, {"offset": 1, "length": 1}]},
    },
]
"""Multimodal metadata: one well-formed item, then each of the request model's consistency rules broken."""
TOP: dict[str, list[Any]] = {
    "model": ["tiny", "", "nope", None, 5],
    "stream": [False, None, "x", 1],
    "request_id": ["r1", 5, None],
    "output_mode": ["tokens", "text", "bogus", 5],
    "return_token_ids": [True, False, "x"],
    "priority": [0, 1, -1, "x"],
    "cache_salt": ["s", "", 5],
    "kv_transfer_params": [None, {}, 5],
    "features": [None, 5, {}, {"mm_hashes": {}, "mm_placeholders": {"image": []}}, *MM_FEATURES],
    "token_offsets": [None, [[0, 1]], [[0]], 5],
    "content_parts": [None, [], [5]],
    "reasoning_ended": [None, True, "x"],
    "reasoning_parser_kwargs": [None, {}, {"x": 1}, {"chat_template_kwargs": 5}],
    "stream_options": [None, {"include_usage": True}, {"x": 1}, 5],
    "ec_transfer_params": [None, {}, 5],
    "foo_bar": [1],
}
CONTENT_TYPES = ["text/plain", "", "application/json; charset=utf-8", "APPLICATION/JSON"]
random_names = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10)


@st.composite
def vllm_requests(draw: st.DrawFn, model: str) -> tuple[bytes, str, str]:
    """A vLLM generate request: (raw body, content type, group). The body starts valid (``model``, a short prompt,
    greedy ``sampling_params``); up to three changes from the tables above (right or wrong values, missing and
    unknown fields), then, sometimes, damaged JSON or another content type. ``group`` names the first change."""
    sampling: dict[str, Any] = {"max_tokens": draw(st.sampled_from([1, 2, 3])), "temperature": 0}
    body: dict[str, Any] = {
        "model": model,
        "token_ids": draw(st.lists(st.integers(0, 2300), min_size=1, max_size=6)),
        "sampling_params": sampling,
    }
    groups: list[str] = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3]))):
        group = draw(st.sampled_from(["sampling", "sampling", "sampling", "top", "token_ids", "required", "unknown"]))
        groups.append(group)
        if group == "sampling":
            name = draw(st.sampled_from(sorted(SAMPLING)))
            pool = SAMPLING[name] if draw(st.booleans()) else WRONG
            sampling[name] = draw(st.sampled_from(pool))
        elif group == "top":
            name = draw(st.sampled_from(sorted(TOP)))
            body[name] = draw(st.sampled_from(TOP[name] if draw(st.booleans()) else WRONG))
        elif group == "token_ids":
            body["token_ids"] = draw(st.sampled_from([[], [-1], [1, "a"], [1.5], [2304], [999999], "x", None, [[1]]]))
        elif group == "required":
            body.pop(draw(st.sampled_from(["token_ids", "sampling_params"])), None)
        else:
            where = sampling if draw(st.booleans()) else body
            where[draw(random_names)] = draw(st.sampled_from(WRONG))
    if draw(st.sampled_from(range(10))) == 0 and "sampling_params" in body:
        body["sampling_params"] = draw(st.sampled_from(WRONG))
        groups.insert(0, "sampling")
    raw = encode(body).encode()
    group = groups[0] if groups else "valid"
    content_type = "application/json"
    damage = draw(st.sampled_from(range(20)))
    if damage == 0:
        raw = raw[: draw(st.sampled_from(range(max(len(raw), 1))))]
        group = "malformed"
    elif damage == 1:
        raw = draw(st.sampled_from([b"", b"[1]", b'"x"', b"5", b"null", b"{", b"{]", raw + b"x", raw[:-1] + b",}"]))
        group = "malformed"
    elif damage == 2:
        content_type = draw(st.sampled_from(CONTENT_TYPES))
        group = "content-type"
    return raw, content_type, group
