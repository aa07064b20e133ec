"""Server-independent conformance properties at higher example counts (four times the profile's), drawn from the
package strategies (``renderers.testing.strategies``) that the server suite and ``renderers-conformance`` use:

- trimming a routing table commutes with decoding it (whatever the cut, dtype or cached state);
- zero-copy extraction of the routing from a body equals a full JSON decode, on both transports' parsers;
- body rules: the same case gives both transports the same prompt, budget, stop ids and sampling values, in
  each server's place for them (Dynamo: nvext / top level with vLLM-only keys dropped; vLLM: sampling_params).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pybase64
from hypothesis import given, settings
from hypothesis import strategies as st

from renderers.client._call import SETTLED_KEYS, GenerateCall
from renderers.client._routed_experts import RoutedExperts
from renderers.client._transports import DynamoTransport, VllmTransport
from renderers.client._transports.dynamo import DROP_KEYS
from renderers.testing.strategies import Case, MoeSettings, cases, moe_settings

SHARED_KEYS = ("temperature", "seed", "min_tokens", "ignore_eos", "top_p", "top_k", "min_p", "presence_penalty",
               "frequency_penalty", "repetition_penalty", "detokenize", "skip_special_tokens",
               "top_logprobs")  # fmt: skip
MORE = settings(max_examples=settings().max_examples * 4)
DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "int16": np.int16, "int32": np.int32}


@st.composite
def tables(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    moe: MoeSettings = draw(moe_settings().filter(lambda m: m.layers > 0))
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    rows = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    arr = np.random.default_rng(seed).integers(0, moe.num_experts, size=(rows, moe.layers, moe.top_k))
    return arr.astype(DTYPES[dtype])


@MORE
@given(table=tables(), k=st.integers(0, 45), predecode=st.booleans())
def test_trim_commutes_with_decode(table: np.ndarray[Any, Any], k: int, predecode: bool) -> None:
    full = RoutedExperts(pybase64.b64encode(table.tobytes()), table.shape, 0, table.dtype.name)
    if predecode:
        full.decoded()
    cut = full.trimmed(k)
    drop = min(k, table.shape[0])
    np.testing.assert_array_equal(cut.to_numpy(), table[drop:])
    assert cut.shape == (table.shape[0] - drop, *table.shape[1:])
    assert cut.start == (k if drop else 0)
    # the re-encoded/sliced text is exactly the base64 of the trimmed bytes
    assert bytes(cut.data) == pybase64.b64encode(table[drop:].tobytes())


def _body(case: Case, table: np.ndarray[Any, Any], n_out: int, transport: str, start: int) -> dict[str, Any]:
    routed = {"data": pybase64.b64encode(table.tobytes()).decode(), "shape": list(table.shape), "start": start,
              "dtype": table.dtype.name}  # fmt: skip
    ids = [(7 * i) % 2301 for i in range(n_out)]
    lps = [-0.5 - i / 64 for i in range(n_out)]
    if transport == "vllm":
        content = [{"token": f"token_id:{t}", "logprob": lp, "bytes": None} for t, lp in zip(ids, lps, strict=True)]
        return {"request_id": "r", "choices": [{"index": 0, "token_ids": ids, "logprobs": {"content": content},
                                                "finish_reason": "length", "routed_experts": routed}]}  # fmt: skip
    engine = {"completion_token_ids": ids, "completion_logprobs": lps, "routed_experts": routed}
    return {"id": "c", "choices": [{"index": 0, "finish_reason": "length", "logprobs": None}],
            "nvext": {"engine_data": engine}}  # fmt: skip


@MORE
@given(
    case=cases(vocab_size=2304, max_prompt_len=256, max_tokens=16),
    moe=moe_settings().filter(lambda m: m.layers > 0),
    n_out=st.integers(1, 16),
    server_trims=st.booleans(),
    transport=st.sampled_from(["vllm", "dynamo"]),
)
def test_zero_copy_parse_equals_full_decode(
    case: Case, moe: MoeSettings, n_out: int, server_trims: bool, transport: str
) -> None:
    k = case.prompt_start or 0
    rows = len(case.prompt_ids) + n_out - 1
    rng = np.random.default_rng(rows)
    full = rng.integers(0, moe.num_experts, size=(rows, moe.layers, moe.top_k)).astype(
        np.uint8 if moe.num_experts <= 256 else np.uint16
    )
    start = k if server_trims else 0
    doc = _body(case, full[start:], n_out, transport, start)
    parser = VllmTransport() if transport == "vllm" else DynamoTransport()
    fast = parser.parse(orjson.dumps(doc), prompt_len=len(case.prompt_ids), prompt_start=case.prompt_start)
    slow = parser.parse(json.dumps(doc).encode(), prompt_len=len(case.prompt_ids), prompt_start=case.prompt_start)
    assert fast.completion_ids == slow.completion_ids
    assert fast.completion_logprobs == slow.completion_logprobs
    assert fast.routed_experts == slow.routed_experts
    assert fast.routed_experts is not None
    assert fast.routed_experts.start == k
    np.testing.assert_array_equal(fast.routed_experts.to_numpy(), full[k:])


@MORE
@given(case=cases(vocab_size=151_669, max_prompt_len=64, max_tokens=4096))
def test_same_case_same_request_on_both_bodies(case: Case) -> None:
    """What ``generate()`` hands the transports (stop ids, logprobs=1, skip_special_tokens default) reaches both
    servers with the same meaning."""
    call = GenerateCall.from_arguments(
        model="m", sampling_params=case.sampling_params, cache_salt=case.cache_salt, priority=case.priority
    )
    req = call.wire_request(case.prompt_ids, None, case.stop_token_ids)
    v = orjson.loads(VllmTransport().build_body(req))
    d = orjson.loads(DynamoTransport().build_body(req))
    assert v["token_ids"] == d["nvext"]["token_data"] == case.prompt_ids
    vsp = v["sampling_params"]
    assert vsp["max_tokens"] == d["max_completion_tokens"]
    assert "max_tokens" not in d
    assert vsp["stop_token_ids"] == d["stop_token_ids"] == case.stop_token_ids
    assert d["logprobs"] is True
    assert vsp["logprobs"] == 1
    for key in SHARED_KEYS:
        assert vsp.get(key) == d.get(key), key
    assert not set(d) & (DROP_KEYS | SETTLED_KEYS)
    assert v.get("cache_salt") == d["nvext"].get("cache_salt") == case.cache_salt
    if case.priority is None:
        assert "priority" not in v
        assert "priority" not in d["nvext"].get("agent_hints", {})
    else:
        assert v["priority"] == case.priority
        assert d["nvext"]["agent_hints"]["priority"] == -case.priority
        assert -(2**31) <= -case.priority < 2**31  # Dynamo's i32
    assert vsp.get("routed_experts_prompt_start") == d["nvext"].get("routed_experts_prompt_start")
    caller = case.sampling_params.get("nvext") or {}
    for key, value in caller.items():
        if key == "extra_fields":
            assert d["nvext"][key][: len(value)] == value
        elif key != "agent_hints":
            assert d["nvext"][key] == value
    if caller.get("greed_sampling"):
        assert case.sampling_params.get("temperature") == 0  # the only case where it cannot change the tokens
