"""Differential validation: the same body to the real Dynamo 1.6.1 frontend and to the mock Dynamo.

Hypothesis builds valid chat bodies (``nvext.token_data`` prompt) and adds random top-level keys: names that are
not fields of the request (random identifiers and vLLM-only keys), and Dynamo's passthrough/ignored keys and
known sampling fields with values of the right type. Both servers must make the same accept/reject decision, and
when they reject, answer with the same status, ``type``, ``code`` and message.

One thing the real frontend does that a byte-for-byte comparison cannot survive: it lists the unsupported names
in hash-map order, which changes from request to request (the same body gave ``foo``, ``truncate_prompt_tokens``
and ``truncate_prompt_tokens``, ``foo``). So the names in an "Unsupported parameter(s)" message are compared as
a set (plus their count); the text around them is compared exactly.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockservers.server import MockServer

pytestmark = pytest.mark.real_dynamo

UNSUPPORTED_PREFIX = "Validation: Unsupported parameter(s): "
_NAME = re.compile(r"`([^`]*)`")

# Top-level keys the 1.6.1 frontend knows (OpenAI fields, CommonExt, Dynamo extras, passthrough and ignored keys).
# Random names are drawn outside this set, so a random value can never hit a field's own type check.
KNOWN_TOP_LEVEL = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
        "top_p", "n", "seed", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
        "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "user",
        "service_tier", "store", "metadata", "modalities", "audio", "prediction", "web_search_options", "functions",
        "function_call", "verbosity", "safety_identifier", "prompt_cache_retention",
        "ignore_eos", "min_tokens", "top_k", "min_p", "repetition_penalty", "include_stop_str_in_output",
        "skip_special_tokens", "prompt_logprobs", "guided_json", "guided_regex", "guided_grammar", "guided_choice",
        "guided_decoding_backend", "guided_whitespace_pattern", "nvext", "chat_template_args", "chat_template_kwargs",
        "thinking", "media_io_kwargs", "return_tokens_as_token_ids", "mm_processor_kwargs",
        "cache_salt", "stop_token_ids", "detokenize", "allowed_token_ids", "bad_words_token_ids",
        "logprob_token_ids", "prompt_cache_key", "add_generation_prompt", "continue_final_message",
    }
)  # fmt: skip

# vLLM request keys that Dynamo 1.6.1 rejects (checked against the real frontend).
VLLM_ONLY_KEYS = (
    "return_token_ids",
    "spaces_between_special_tokens",
    "priority",
    "routed_experts_prompt_start",
    "truncate_prompt_tokens",
    "add_special_tokens",
    "echo",
    "best_of",
    "use_beam_search",
    "length_penalty",
    "request_id",
    "structured_outputs",
    "kv_transfer_params",
    "documents",
    "chat_template",
    "vllm_xargs",
    "bad_words",
)

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# No backtick and no comma: the names in an "Unsupported parameter(s)" message must be unambiguous to split.
random_names = st.text(alphabet=string.ascii_letters + string.digits + "_-.$ ", min_size=1, max_size=20).filter(
    lambda s: s not in KNOWN_TOP_LEVEL
)
unknown_keys = st.dictionaries(random_names | st.sampled_from(VLLM_ONLY_KEYS), json_values, max_size=4)

token_ids = st.lists(st.integers(0, 2300), min_size=1, max_size=8)
known_valid = st.fixed_dictionaries(
    {},
    optional={
        "cache_salt": st.none() | st.text(max_size=12),
        "stop_token_ids": token_ids,
        "detokenize": st.booleans(),
        "allowed_token_ids": token_ids,
        "bad_words_token_ids": st.lists(token_ids, max_size=2),
        "logprob_token_ids": token_ids,
        # prompt_cache_key (accepted and ignored by 1.6.1) is pinned in KNOWN_MOCK_GAPS until the mock takes it.
        "temperature": st.floats(0.0, 2.0),
        "top_p": st.floats(0.01, 1.0),
        "top_k": st.sampled_from([-1, 1, 5, 50]),
        "min_p": st.floats(0.0, 1.0),
        "seed": st.integers(0, 2**31 - 1),
        "repetition_penalty": st.floats(0.5, 2.0),
        "presence_penalty": st.floats(-2.0, 2.0),
        "frequency_penalty": st.floats(-2.0, 2.0),
        "ignore_eos": st.booleans(),
        "min_tokens": st.integers(0, 2),
        "include_stop_str_in_output": st.booleans(),
        "skip_special_tokens": st.booleans(),
        "logprobs": st.booleans(),
        "stream": st.just(False),
    },
)


@st.composite
def bodies(draw: st.DrawFn, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": draw(st.text(max_size=10))}],
        "max_tokens": draw(st.integers(1, 3)),
        "nvext": {"token_data": draw(token_ids)},
    }
    body.update(draw(known_valid))
    body.update(draw(unknown_keys))
    return body


def _verdict(resp: httpx.Response) -> tuple[int, Any]:
    """What must agree: the status, and for an error its type, code and message (unsupported names as a set)."""
    if resp.status_code == 200:
        doc = resp.json()
        assert doc["object"] == "chat.completion", doc
        return 200, None
    doc = resp.json()
    assert isinstance(doc, Mapping), doc
    message = doc.get("message")
    if isinstance(message, str) and message.startswith(UNSUPPORTED_PREFIX):
        names = _NAME.findall(message[len(UNSUPPORTED_PREFIX) :])
        if len(names) > 1:  # one name: compare the exact text
            message = (UNSUPPORTED_PREFIX, len(names), frozenset(names))
    return resp.status_code, (doc.get("type"), doc.get("code"), message)


def unsupported_names(body: Mapping[str, Any]) -> set[str]:
    return {k for k in body if k not in KNOWN_TOP_LEVEL}


@pytest.fixture(scope="module")
def mock_dynamo_strict_url(real_dynamo_model: str) -> Iterator[str]:
    """A mock Dynamo in its default strict mode (no lax validation), serving the same model name, mocker worker."""
    with MockServer("dynamo", model=real_dynamo_model, dynamo_backend="mocker", lax_validation=False) as mock:
        yield mock.url


@pytest.fixture(scope="module")
def both(real_dynamo_url: str, mock_dynamo_strict_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=real_dynamo_url, timeout=30.0) as real,
        httpx.Client(base_url=mock_dynamo_strict_url, timeout=30.0) as mock,
    ):
        yield real, mock


def post_both(both: tuple[httpx.Client, httpx.Client], body: Mapping[str, Any]) -> tuple[Any, Any, str]:
    real, mock = both
    raw = orjson.dumps(body)
    headers = {"content-type": "application/json"}
    r = real.post("/v1/chat/completions", content=raw, headers=headers)
    m = mock.post("/v1/chat/completions", content=raw, headers=headers)
    report = f"body: {raw.decode()}\nreal: {r.status_code} {r.text[:400]}\nmock: {m.status_code} {m.text[:400]}"
    return _verdict(r), _verdict(m), report


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_same_decision_and_message_for_random_top_level_keys(
    both: tuple[httpx.Client, httpx.Client], real_dynamo_model: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(real_dynamo_model), label="body")
    real, mock, report = post_both(both, body)
    assert real == mock, report
    names = unsupported_names(body)
    if names:  # the real verdict is also what this test believes about the key sets
        assert real[0] == 400, report
        message = real[1][2]
        if isinstance(message, tuple):
            assert message[2] == frozenset(names), report
        else:
            assert message == f"{UNSUPPORTED_PREFIX}`{next(iter(names))}`", report
    else:
        assert real[0] == 200, report


# Where the mock once disagreed with the real 1.6.1 frontend (found by this test, fixed in the mock).
FORMER_MOCK_GAPS = [
    {"prompt_cache_key": "k"},
    {"prompt_logprobs": 1},
    {"add_generation_prompt": True},
    {"continue_final_message": False},
    {"stop": []},
    {"max_tokens": 0},
]


@pytest.mark.parametrize(
    "extra",
    [
        {"": 1},
        {"a`b": 1},
        {"ü": None},
        {"Foo": 1, "foo": 2},
        {"priority": 0, "return_token_ids": True, "spaces_between_special_tokens": False},
        {"routed_experts_prompt_start": 0},
        {"x": 1, "cache_salt": 5},
        {"cache_salt": 5},
        {"cache_salt": None},
        {"cache_salt": ""},
        {"min_p": 0.5, "top_k": -1, "skip_special_tokens": False, "include_stop_str_in_output": True},
        {"detokenize": True, "stop_token_ids": [1], "allowed_token_ids": [1, 2], "bad_words_token_ids": [[3]]},
        *FORMER_MOCK_GAPS,
    ],
    ids=repr,
)
def test_same_decision_and_message_examples(
    both: tuple[httpx.Client, httpx.Client], real_dynamo_model: str, extra: dict[str, Any]
) -> None:
    body = {"model": real_dynamo_model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2, **extra}
    real, mock, report = post_both(both, body)
    assert real == mock, report
