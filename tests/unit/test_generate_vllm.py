"""generate() over the vLLM transport (httpx.MockTransport): the request body, the parse rules, routing rows."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from renderers.client import RoutedExperts
from renderers.errors import (
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    RoutedExpertsError,
)
from renderers.types import RenderedTokens, ToolCallParseStatus
from tests.helpers.fake_renderer import FakeRenderer
from tests.helpers.scripted_engine import (
    TOOLS,
    VLLM_URL,
    ScriptedEngine,
    b64,
    dynamo_body,
    routed,
    run,
    vllm_body,
)


async def test_vllm_builds_request_body_and_parses_response() -> None:
    engine = ScriptedEngine(vllm_body(routed_experts=routed(4)))
    renderer = FakeRenderer()
    out = await run(
        engine,
        renderer,
        tools=TOOLS,
        cache_salt="ckpt-42",
        sampling_params={"temperature": 0.3, "max_tokens": 7, "min_tokens": 2, "stop_token_ids": [1], "logprobs": 5},
    )
    assert str(engine.requests[-1].url) == VLLM_URL
    assert engine.requests[-1].headers["content-type"] == "application/json"
    assert engine.body == {
        "model": "test-model",
        "token_ids": [1, 2, 3],
        "cache_salt": "ckpt-42",
        "sampling_params": {"temperature": 0.3, "max_tokens": 7, "min_tokens": 2, "stop_token_ids": [99],
                            "logprobs": 1, "skip_special_tokens": False},
    }  # fmt: skip
    assert renderer.render_calls[0]["tools"] == TOOLS
    assert renderer.render_calls[0]["add_generation_prompt"] is True
    assert renderer.parse_calls == [{"token_ids": [7, 8], "tools": TOOLS}]
    assert out["request_id"] == "gen-test"
    assert out["prompt_ids"] == [1, 2, 3]
    assert out["completion_ids"] == [7, 8]
    assert out["completion_logprobs"] == [-0.1, -0.2]
    assert out["content"] == "done"
    assert out["reasoning_content"] == "think"
    assert out["finish_reason"] == "tool_calls"
    assert [tc.name for tc in out["tool_calls"]] == ["echo"]
    assert isinstance(out["prompt_attribution"], RenderedTokens)
    assert out["prompt_attribution"].token_ids == [1, 2, 3]
    re = out["routed_experts"]
    assert isinstance(re, RoutedExperts)
    assert isinstance(re.data, memoryview)
    assert re.data.tobytes() == b64(b"\x01\x02\x03\x04").encode()
    assert re.shape == (4, 1, 1)
    assert re.start == 0
    assert re.dtype == "uint8"
    assert re.to_numpy().ravel().tolist() == [1, 2, 3, 4]


async def test_caller_skip_special_tokens_is_kept() -> None:
    engine = ScriptedEngine(vllm_body())
    await run(engine, sampling_params={"skip_special_tokens": True})
    assert engine.body["sampling_params"]["skip_special_tokens"] is True


async def test_old_style_token_id_logprobs_parse() -> None:
    out = await run(ScriptedEngine(vllm_body(shape="old")))
    assert out["completion_logprobs"] == [-0.1, -0.2]


async def test_malformed_tool_calls_do_not_promote_finish_reason() -> None:
    renderer = FakeRenderer(tool_status=ToolCallParseStatus.INVALID_JSON)
    out = await run(ScriptedEngine(vllm_body()), renderer, tools=TOOLS)
    assert out["finish_reason"] == "stop"
    assert len(out["tool_calls"]) == 1
    assert out["tool_calls"][0].status is ToolCallParseStatus.INVALID_JSON


async def test_length_finish_is_never_promoted() -> None:
    out = await run(ScriptedEngine(vllm_body(finish="length")), tools=TOOLS)
    assert out["finish_reason"] == "length"


async def test_prebuilt_prompt_ids_skip_rendering_and_pass_attribution_through() -> None:
    engine = ScriptedEngine(vllm_body())
    renderer = FakeRenderer()
    out = await run(engine, renderer, prompt_ids=[11, 12, 13])
    assert renderer.render_calls == []
    assert engine.body["token_ids"] == [11, 12, 13]
    assert out["prompt_attribution"] is None
    marker = object()
    out = await run(engine, renderer, prompt_ids=np.array([11, 12, 13]), prompt_attribution=marker)
    assert out["prompt_attribution"] is marker
    assert engine.body["token_ids"] == [11, 12, 13]


async def test_bad_prompt_ids_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"prompt_ids\[1\]"):
        await run(ScriptedEngine(vllm_body()), prompt_ids=[1, -2])


async def test_vllm_priority_and_salt_from_sampling_params_go_top_level() -> None:
    engine = ScriptedEngine(vllm_body())
    await run(engine, sampling_params={"priority": 3, "cache_salt": "s"})
    assert engine.body["priority"] == 3
    assert engine.body["cache_salt"] == "s"
    assert "priority" not in engine.body["sampling_params"]
    assert "cache_salt" not in engine.body["sampling_params"]
    await run(engine, priority=-4, sampling_params={"priority": 3})
    assert engine.body["priority"] == -4


@pytest.mark.parametrize("base_url", ["http://engine:8000", "http://engine:8000/", "http://engine:8000/v1/"])
async def test_base_url_with_or_without_v1(base_url: str) -> None:
    engine = ScriptedEngine(vllm_body(), dynamo_body([7], [-0.5]))
    await run(engine, base_url=base_url)
    assert str(engine.requests[-1].url) == VLLM_URL


async def test_extra_headers_are_sent() -> None:
    engine = ScriptedEngine(vllm_body())
    await run(engine, extra_headers={"X-Session-ID": "abc"})
    assert engine.requests[-1].headers["x-session-id"] == "abc"


async def test_vllm_missing_token_ids_raises() -> None:
    body = vllm_body()
    del body["choices"][0]["token_ids"]
    with pytest.raises(MissingCompletionIdsError):
        await run(ScriptedEngine(body))


async def test_vllm_null_logprobs_with_tokens_is_a_mismatch() -> None:
    body = vllm_body()
    body["choices"][0]["logprobs"] = None
    with pytest.raises(LogprobMismatchError) as info:
        await run(ScriptedEngine(body))
    assert info.value.n_ids == 2
    assert info.value.n_logprobs == 0


async def test_vllm_logprob_count_mismatch_raises() -> None:
    with pytest.raises(LogprobMismatchError):
        await run(ScriptedEngine(vllm_body([7, 8], [-0.1])))


async def test_empty_completion_is_valid() -> None:
    out = await run(ScriptedEngine(vllm_body([], [])))
    assert out["completion_ids"] == []
    assert out["completion_logprobs"] == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["logprobs"]["content"][1].__setitem__("logprob", None), "choices[0].logprobs.content[1].logprob"),
        (lambda c: c["logprobs"]["content"][1].pop("logprob"), "choices[0].logprobs.content[1].logprob"),
        (lambda c: c["logprobs"]["content"][0].__setitem__("logprob", "x"), "choices[0].logprobs.content[0].logprob"),
        (lambda c: c["logprobs"]["content"][0].__setitem__("logprob", True), "choices[0].logprobs.content[0].logprob"),
        (lambda c: c["logprobs"]["content"][0].__setitem__("logprob", 0.5), "choices[0].logprobs.content[0].logprob"),
        (lambda c: c["logprobs"]["content"][0].__setitem__("logprob", -9999.0),
         "choices[0].logprobs.content[0].logprob"),
        (lambda c: c["logprobs"]["content"][0].__setitem__("token_id", 8), "choices[0].logprobs.content[0].token_id"),
        (lambda c: c.__setitem__("token_ids", [7, -8]), "choices[0].token_ids[1]"),
        (lambda c: c.__setitem__("token_ids", [7, True]), "choices[0].token_ids[1]"),
        (lambda c: c.__setitem__("token_ids", [7, 8.0]), "choices[0].token_ids[1]"),
        (lambda c: c.__setitem__("token_ids", "78"), "choices[0].token_ids"),
        (lambda c: c.__setitem__("logprobs", [1]), "choices[0].logprobs"),
        (lambda c: c.__setitem__("finish_reason", 3), "choices[0].finish_reason"),
    ],
)  # fmt: skip
async def test_malformed_fields_are_named(mutate: Callable[[dict[str, Any]], Any], field: str) -> None:
    body = vllm_body()
    mutate(body["choices"][0])
    raw = orjson.dumps(body)
    with pytest.raises(MalformedResponseError) as info:
        await run(ScriptedEngine(httpx.Response(200, content=raw)))
    assert info.value.field == field
    assert field in str(info.value)


async def test_old_style_token_mismatch_is_named() -> None:
    body = vllm_body(shape="old")
    body["choices"][0]["logprobs"]["content"][1]["token"] = "token_id:5"
    with pytest.raises(MalformedResponseError, match="misaligned"):
        await run(ScriptedEngine(body))


@pytest.mark.parametrize(
    ("raw", "field"),
    [(b"not json", None), (b'{"request_id": "x"}', "choices"), (b'{"choices": []}', "choices"), (b"[1]", None),
     (b'{"choices": [1]}', "choices[0]")],
)  # fmt: skip
async def test_body_not_json_or_without_choices(raw: bytes, field: str | None) -> None:
    with pytest.raises(MalformedResponseError) as info:
        await run(ScriptedEngine(httpx.Response(200, content=raw)))
    assert info.value.field == field


async def test_vllm_npy_routed_experts() -> None:
    arr = np.arange(4, dtype=np.uint16).reshape(4, 1, 1) + 300
    buf = io.BytesIO()
    np.save(buf, arr)
    out = await run(ScriptedEngine(vllm_body(routed_experts=b64(buf.getvalue()))))
    re = out["routed_experts"]
    assert re is not None
    assert re.dtype == "uint16"
    assert re.shape == (4, 1, 1)
    assert re.start == 0
    assert re.to_numpy().ravel().tolist() == [300, 301, 302, 303]


async def test_vllm_server_trimmed_npy_routed_experts_gets_start_from_row_count() -> None:
    arr = np.array([3, 4], dtype=np.uint8).reshape(2, 1, 1)
    buf = io.BytesIO()
    np.save(buf, arr)
    out = await run(ScriptedEngine(vllm_body(routed_experts=b64(buf.getvalue()))),
                    sampling_params={"routed_experts_prompt_start": 2})  # fmt: skip
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.shape == (2, 1, 1)


async def test_vllm_routed_experts_row_count_must_match_tokens() -> None:
    with pytest.raises(RoutedExpertsError, match="rows"):
        await run(ScriptedEngine(vllm_body(routed_experts=routed(5))))


async def test_vllm_client_side_trim_when_server_returns_full_sequence() -> None:
    engine = ScriptedEngine(vllm_body(routed_experts=routed(4)))
    out = await run(engine, sampling_params={"routed_experts_prompt_start": 3})
    assert engine.body["sampling_params"]["routed_experts_prompt_start"] == 3
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 3
    assert re.shape == (1, 1, 1)
    assert re.to_numpy().ravel().tolist() == [4]
