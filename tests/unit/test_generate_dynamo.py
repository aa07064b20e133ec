"""generate() over the Dynamo transport (httpx.MockTransport): the chat + nvext body, where ids, logprobs and
routing are read from, the float32 chat echo."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from renderers.errors import (
    LogprobMismatchError,
    MissingCompletionIdsError,
    RoutedExpertsError,
)
from tests.helpers.scripted_engine import (
    DYN_URL,
    TOOLS,
    VLLM_URL,
    ScriptedEngine,
    dynamo_body,
    routed,
    run,
    vllm_body,
)


async def test_dynamo_request_body_shape() -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4)))
    out = await run(
        engine,
        transport="dynamo",
        tools=TOOLS,
        cache_salt="ckpt-42",
        priority=17,
        sampling_params={"temperature": 0.3, "max_tokens": 7, "bad_words_token_ids": [[1, 2]],
                         "allowed_token_ids": [7, 8], "detokenize": False, "seed": None},
    )  # fmt: skip
    assert str(engine.requests[-1].url) == DYN_URL
    assert engine.body == {
        "model": "test-model",
        "messages": [{"role": "user", "content": ""}],
        "stream": False,
        "nvext": {"token_data": [1, 2, 3], "extra_fields": ["engine_data"], "cache_salt": "ckpt-42",
                  "agent_hints": {"priority": -17}},
        "temperature": 0.3,
        "max_completion_tokens": 7,
        "logprobs": True,
        "skip_special_tokens": False,
        "stop_token_ids": [99],
        "bad_words_token_ids": [[1, 2]],
        "allowed_token_ids": [7, 8],
        "detokenize": False,
    }  # fmt: skip
    assert out["completion_ids"] == [7, 8]
    assert out["completion_logprobs"] == [-0.1, -0.2]
    assert out["request_id"] == "chatcmpl-1"
    assert out["finish_reason"] == "tool_calls"
    re = out["routed_experts"]
    assert re is not None
    assert isinstance(re.data, memoryview)
    assert re.to_payload() == {"data": "AQIDBA==", "shape": [4, 1, 1], "start": 0, "dtype": "uint8"}


@pytest.mark.parametrize("name", ["dynamo", "dynamo_chat"])
async def test_dynamo_aliases(name: str) -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport=name)
    assert str(engine.requests[-1].url) == DYN_URL


async def test_vllm_generate_alias() -> None:
    engine = ScriptedEngine(vllm_body())
    await run(engine, transport="vllm_generate")
    assert str(engine.requests[-1].url) == VLLM_URL


async def test_dynamo_top_logprobs_only_when_more_than_one() -> None:
    from renderers.client._call import WireRequest
    from renderers.client._transports import DynamoTransport

    body = orjson.loads(DynamoTransport().build_body(WireRequest("m", [1], {"logprobs": 3})))
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 3
    body = orjson.loads(DynamoTransport().build_body(WireRequest("m", [1], {"logprobs": 1})))
    assert body["logprobs"] is True
    assert "top_logprobs" not in body


async def test_dynamo_forwards_extra_fields_and_drops_vllm_only_keys() -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(1, start=3)))
    await run(
        engine,
        transport="dynamo",
        sampling_params={"presence_penalty": 0.1, "frequency_penalty": 0.2, "stop": ["x"], "guided_json": {},
                         "return_token_ids": True, "spaces_between_special_tokens": False,
                         "routed_experts_prompt_start": 3, "extra_args": {"a": 1}},
    )  # fmt: skip
    body = engine.body
    for key in ("presence_penalty", "frequency_penalty", "stop", "guided_json", "extra_args"):
        assert key in body
    for key in (
        "return_token_ids",
        "spaces_between_special_tokens",
        "routed_experts_prompt_start",
        "priority",
        "max_tokens",
        "tools",
        "cache_salt",
        "top_logprobs",
    ):
        assert key not in body  # fmt: skip
    assert body["nvext"]["routed_experts_prompt_start"] == 3
    assert "extra_args" not in body["nvext"]


@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
@pytest.mark.parametrize("priority", [2**31 - 1, -(2**31 - 1)])
async def test_priority_at_the_int32_bound_is_sent(transport: str, priority: int) -> None:
    body = vllm_body() if transport == "vllm" else dynamo_body([7, 8], [-0.1, -0.2])
    engine = ScriptedEngine(body)
    await run(engine, transport=transport, priority=priority)
    sent = engine.body["priority"] if transport == "vllm" else engine.body["nvext"]["agent_hints"]["priority"]
    assert sent == (priority if transport == "vllm" else -priority)
    assert -(2**31) <= sent <= 2**31 - 1


async def test_dynamo_drops_an_empty_stop_list_but_keeps_a_non_empty_one() -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2]), dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport="dynamo", sampling_params={"stop": []})
    assert "stop" not in engine.body
    await run(engine, transport="dynamo", sampling_params={"stop": ["</s>"]})
    assert engine.body["stop"] == ["</s>"]


async def test_dynamo_merges_caller_nvext() -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2]))
    caller = {"extra_fields": ["timing"], "agent_hints": {"osl": 4}, "annotations": ["trace"], "token_data": [0]}
    await run(engine, transport="dynamo", priority=9, sampling_params={"nvext": caller})
    nv = engine.body["nvext"]
    assert nv["token_data"] == [1, 2, 3]
    assert nv["extra_fields"] == ["timing", "engine_data"]
    assert nv["agent_hints"] == {"osl": 4, "priority": -9}
    assert nv["annotations"] == ["trace"]
    assert caller == {
        "extra_fields": ["timing"],
        "agent_hints": {"osl": 4},
        "annotations": ["trace"],
        "token_data": [0],
    }


async def test_dynamo_sampling_params_salt_and_priority_go_to_nvext() -> None:
    engine = ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport="dynamo", sampling_params={"cache_salt": "ckpt-9", "priority": 5})
    assert engine.body["nvext"]["cache_salt"] == "ckpt-9"
    assert engine.body["nvext"]["agent_hints"] == {"priority": -5}
    assert "cache_salt" not in engine.body
    assert "priority" not in engine.body


async def test_dynamo_without_completion_ids_raises() -> None:
    with pytest.raises(MissingCompletionIdsError, match="completion token ids"):
        await run(ScriptedEngine(dynamo_body(chat_lps=[-0.1])), transport="dynamo")


async def test_dynamo_present_but_empty_completion() -> None:
    out = await run(ScriptedEngine(dynamo_body([], [], chat_lps=[])), transport="dynamo")
    assert out["completion_ids"] == []
    assert out["completion_logprobs"] == []


async def test_dynamo_prefers_engine_ids_over_choice_token_ids() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2])
    body["choices"][0]["token_ids"] = [99, 99]
    out = await run(ScriptedEngine(body), transport="dynamo")
    assert out["completion_ids"] == [7, 8]


async def test_dynamo_id_fallbacks() -> None:
    body = dynamo_body(chat_lps=[-0.1, -0.2])
    body["nvext"] = {"completion_token_ids": [5, 6]}
    assert (await run(ScriptedEngine(body), transport="dynamo"))["completion_ids"] == [5, 6]
    body = dynamo_body(chat_lps=[-0.1, -0.2])
    del body["nvext"]
    body["choices"][0]["token_ids"] = [4, 6]
    assert (await run(ScriptedEngine(body), transport="dynamo"))["completion_ids"] == [4, 6]


async def test_dynamo_engine_logprobs_win_over_chat() -> None:
    out = await run(ScriptedEngine(dynamo_body([7, 8], [-1.0, -2.0], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert out["completion_logprobs"] == [-1.0, -2.0]


async def test_dynamo_falls_back_to_chat_logprobs_rounded_to_float32() -> None:
    out = await run(ScriptedEngine(dynamo_body([7, 8], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert out["completion_logprobs"] == [float(np.float32(-0.1)), float(np.float32(-0.2))]


def test_dynamo_chat_echo_recovers_the_engine_logprobs_exactly_on_a_real_body() -> None:
    """Real Dynamo 1.6.1 + dynamo.vllm: the chat echo prints float32 text (-7.6456947), engine_data the double
    (-7.645694732666016). Without engine_data's logprobs the client must still return the engine's values."""
    from renderers.client._transports import DynamoTransport
    from tests.conftest import RECORDINGS

    raw = (RECORDINGS / "real-dynamo-1.6.1" / "dynamo-vllm-worker" / "dv_chat_nvext.json").read_bytes()
    doc = orjson.loads(raw)
    engine_lps = doc["nvext"]["engine_data"].pop("completion_logprobs")
    chat_texts = [e["logprob"] for e in doc["choices"][0]["logprobs"]["content"]]
    assert chat_texts != engine_lps  # the echo really is lossy as text
    parsed = DynamoTransport().parse(orjson.dumps(doc), prompt_len=18)
    assert parsed.completion_logprobs == engine_lps


async def test_dynamo_logprob_length_mismatch_raises() -> None:
    with pytest.raises(LogprobMismatchError):
        await run(ScriptedEngine(dynamo_body([7, 8], chat_lps=[-0.1])), transport="dynamo")


async def test_dynamo_present_empty_engine_logprobs_raise_for_nonempty_completion() -> None:
    with pytest.raises(LogprobMismatchError) as info:
        await run(ScriptedEngine(dynamo_body([7, 8], [], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert info.value.field == "nvext.engine_data.completion_logprobs"


async def test_dynamo_placeholder_nvext_routed_experts_falls_back_to_engine() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(1, start=3), nvext_routed="placeholder")
    out = await run(ScriptedEngine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 3})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 3
    assert re.shape == (1, 1, 1)


async def test_dynamo_nvext_routed_experts_channel() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], nvext_routed=routed(4))
    out = await run(ScriptedEngine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 2})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.to_numpy().ravel().tolist() == [3, 4]


async def test_dynamo_first_turn_keeps_full_sequence() -> None:
    out = await run(ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4))), transport="dynamo")
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 0
    assert re.shape == (4, 1, 1)


async def test_dynamo_already_trimmed_is_not_trimmed_twice() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(2, start=2))
    out = await run(ScriptedEngine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 2})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.to_numpy().ravel().tolist() == [3, 4]


async def test_dynamo_unknown_dtype_raises() -> None:
    bad = routed(4)
    bad["dtype"] = "float16"
    with pytest.raises(RoutedExpertsError, match="dtype"):
        await run(ScriptedEngine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=bad)), transport="dynamo")


async def test_dynamo_multimodal_raises() -> None:
    engine = ScriptedEngine(dynamo_body([7], [-0.1]))
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(NotImplementedError, match="multimodal"):
        await run(engine, transport="dynamo", messages=msgs)
    assert engine.requests == []
