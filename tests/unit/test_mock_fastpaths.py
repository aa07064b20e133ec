"""The mocks' fast paths give what the plain ones give (dicts through orjson, the standard library's JSON reader)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers import routing
from mockservers.app import MockState
from mockservers.config import MockConfig
from mockservers.engine import Engine, RoutePlan, SamplingParams
from mockservers.faults import NO_FAULT
from mockservers.protocol import RequestError
from mockservers.vllm import responses, rules
from mockservers.vllm.app import vllm_error
from tests.real.bodies import vllm_requests


@pytest.fixture(scope="module")
def state() -> MockState:
    return MockState("vllm", MockConfig(), vllm_error)


@pytest.mark.parametrize("profile", ["prime-rl", "vllm-0.32"])
@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=1, seed=1),
        SamplingParams(max_tokens=300, seed=2, temperature=0.7),
        SamplingParams(max_tokens=2000, seed=3),  # ends on EOS (a peaked position)
        SamplingParams(max_tokens=50, temperature=0.0, ignore_eos=True),
        SamplingParams(max_tokens=5000, seed=4, ignore_eos=True),  # three chunks of entries
    ],
)
def test_fast_logprobs_equal_the_dicts(state: MockState, profile: str, params: SamplingParams) -> None:
    c = state.engine.generate([2302, 84, 326, 81, 198], params)
    builder = responses._logprobs_032 if profile == "vllm-0.32" else responses._logprobs_prime
    expected = orjson.dumps(builder(state, c, 1, False))
    assert responses.fast_logprobs(profile, c) == expected
    stream = responses.fast_logprobs_stream(profile, c)
    chunks = list(stream.chunks())
    assert len(stream) == len(expected)
    assert b"".join(chunks) == expected
    assert len(chunks) == 2 + -(-len(c.token_ids) // responses._ENTRIES_PER_CHUNK)


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 4, 5, 100, 1001])
@pytest.mark.parametrize(("layers", "top_k", "experts"), [(3, 4, 8), (5, 3, 300), (48, 8, 256), (1, 1, 2)])
@pytest.mark.parametrize("block_bytes", [1, 50, 1 << 18])
def test_routing_base64_made_in_blocks_equals_the_whole_encoding(
    rows: int, layers: int, top_k: int, experts: int, block_bytes: int
) -> None:
    """The deferred base64 (raw and ``.npy``), made block by block with up to 2 bytes carried between blocks, is
    stdlib base64 of the whole table and of ``np.save``'s file."""
    ids = [(7 * i + 3) % 2304 for i in range(rows + 1)]
    plan = RoutePlan.of(ids, 0, layers, top_k, experts)
    arr = Engine.routed_experts(ids, 0, layers, top_k, experts)
    assert plan.shape == arr.shape
    assert plan.dtype == arr.dtype
    blocks = list(plan.blocks(block_bytes))
    assert all(len(b) % 3 == 0 for b in blocks[:-1])
    assert np.array_equal(np.concatenate([arr[:0], *blocks]), arr)
    raw = routing.base64_stream(plan, plan.nbytes, lambda: plan.blocks(block_bytes), npy=False)
    assert raw.materialise() == base64.b64encode(arr.tobytes())
    assert len(raw) == len(raw.materialise())
    npy_file = io.BytesIO()
    np.save(npy_file, arr, allow_pickle=False)
    npy = routing.base64_stream(plan, plan.nbytes, lambda: plan.blocks(block_bytes), npy=True)
    assert npy.materialise() == base64.b64encode(npy_file.getvalue())
    assert len(npy) == len(npy.materialise())


def test_a_deferred_piece_that_makes_other_than_its_size_fails() -> None:
    piece = routing.Deferred(5, lambda: [b"abc"])
    with pytest.raises(AssertionError, match="announced 5 bytes and made 3"):
        piece.materialise()


def test_splice_puts_each_piece_where_its_placeholder_was() -> None:
    obj = {"a": "\u2063x\u2063", "b": [1, "\u2063y\u2063"], "c": routing.PLACEHOLDER, "d": routing.PLACEHOLDER}
    replacements = [(routing.PLACEHOLDER, (b'"', b"QUJD", b'"')), ("\u2063y\u2063", (b"[2,3]",)), ("none", (b"1",))]
    out = routing.splice(obj, replacements)
    assert orjson.loads(out) == {"a": "\u2063x\u2063", "b": [1, [2, 3]], "c": "QUJD", "d": "QUJD"}
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    body = routing.dumps({"routed_experts": routing.routed_object(arr, 0)}, routing.raw_base64(arr))
    assert body.startswith(b'{"routed_experts":{"data":"AAECAwQF')


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@given(value=json_values)
def test_json_bodies_read_as_the_standard_library_reads_them(value: object) -> None:
    """The body reader's orjson fast path gives the value vLLM's reader (the standard library) gives, integers past
    64 bits included (orjson would round those to floats)."""
    raw = json.dumps(value).encode()
    assert rules.read_json(raw, "application/json") == json.loads(raw)


@given(case=vllm_requests("tiny-qwen3"))
def test_a_body_read_in_one_pass_is_the_request_the_exact_path_reads(case: tuple[bytes, str, str]) -> None:
    """The one-pass reader (pydantic's JSON reader straight into the model) accepts a subset of what vLLM's path
    (the standard library's reader, then the model) accepts, and gives the same request; whatever it refuses goes
    to the exact path."""
    raw, content_type, _ = case
    fast = rules._plain_request(raw, content_type)
    try:
        exact = rules._request(raw, content_type)
    except RequestError:
        assert fast is None
        return
    if fast is not None:
        assert fast == exact


@given(value=json_values)
def test_json_values_read_in_one_pass_equal_the_standard_librarys(value: object) -> None:
    """Numbers (integers past 64 bits, floats to the last bit) and text read by the one-pass reader are what the
    standard library reads: a free-form field carries the value through either reader."""
    body = {"token_ids": [1], "sampling_params": {"max_tokens": 1}, "kv_transfer_params": {"v": value}}
    raw = json.dumps(body).encode()
    fast = rules._plain_request(raw, "application/json")
    assert fast is not None
    assert fast == rules._request(raw, "application/json")
    assert fast.kv_transfer_params == json.loads(raw)["kv_transfer_params"]


def test_a_plain_body_takes_the_one_pass_reader(state: MockState, monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed of the common request depends on it: the exact path is not used for a valid body."""

    def refuse(raw: bytes, content_type: str | None) -> None:
        raise AssertionError("the exact path was used")

    monkeypatch.setattr(rules, "_request", refuse)
    raw = orjson.dumps({"token_ids": [5, 6], "sampling_params": {"max_tokens": 2, "logprobs": 1, "seed": 3}})
    call = rules.parse_generate(raw, state, content_type="application/json", header_id=None)
    assert call.ids == [5, 6]
    assert call.n_logprobs == 1
    assert call.params[0].seed == 3


@pytest.mark.parametrize("n_logprobs", [None, 0, 1])
@pytest.mark.parametrize("n", [1, 3])
def test_small_body_equals_the_encoded_object(n_logprobs: int | None, n: int) -> None:
    """The small-response bytes are exactly orjson's encoding of the response object (dense prime-rl mock)."""
    dense = MockState("vllm", MockConfig(moe_layers=0), vllm_error)
    ids = [2302, 84, 326, 81, 198]
    params = [SamplingParams(max_tokens=16, seed=5, choice_index=i) for i in range(n)]
    completions = [dense.engine.generate(ids, p) for p in params]
    sampling: dict[str, object] = {"max_tokens": 16}
    call = rules.ValidRequest(ids, sampling, params, n_logprobs, None, 'generate-tokens-a"b', False, False, False)
    small = responses.small_body(dense, call, completions, NO_FAULT)
    obj, spliced = responses.build_response(dense, call, completions, NO_FAULT)
    assert small is not None
    assert small == orjson.dumps(obj)
    assert not spliced
    assert responses.small_body(state_moe(), call, completions, NO_FAULT) is None  # MoE: routing goes in


def state_moe() -> MockState:
    return MockState("vllm", MockConfig(moe_layers=2), vllm_error)


def test_large_body_written_in_pieces_equals_the_joined_body(mock_server_factory: Any) -> None:
    """Above 1 MB the mock writes the body piece by piece; the bytes are the ones the joined path sends (a request
    with a no-op fault header takes the joined path)."""
    import urllib.request

    server = mock_server_factory("vllm", moe_layers=48, moe_top_k=8, max_model_len=8192)
    body = orjson.dumps(
        {"token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 3000, "ignore_eos": True, "logprobs": 1}}
    )

    def fetch(extra: dict[str, str]) -> bytes:
        headers = {"Content-Type": "application/json", "X-Request-Id": "same", **extra}
        req = urllib.request.Request(server.url + "/inference/v1/generate", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
            data: bytes = resp.read()
            return data

    pieces, joined = fetch({}), fetch({"x-mock-fault": "delay_s=0"})
    assert len(pieces) > 1 << 20
    assert pieces == joined
    doc = orjson.loads(pieces)
    assert doc["choices"][0]["routed_experts"]["shape"] == [3002, 48, 8]
