"""generate() end to end over httpx.MockTransport: request bodies, parse rules, errors, limits, adapters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pybase64
import pytest

from renderers.client import GenerateResult, RoutedExperts, generate
from renderers.client.limits import clear_max_prompt_len_cache, max_prompt_len_cache
from renderers.client.transports.dynamo import servers_without_prompt_start
from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    OverlongPromptError,
    RoutedExpertsError,
)
from renderers.types import Message, RenderedTokens, ToolCallParseStatus
from tests.helpers.fake_renderer import FakePool, FakeRenderer

BASE = "http://engine:8000/v1"
VLLM_URL = "http://engine:8000/inference/v1/generate"
DYN_URL = "http://engine:8000/v1/chat/completions"
MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]
TOOLS = [{"name": "echo", "description": "echo", "parameters": {"type": "object"}}]


def b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode()


def routed(rows: int, *, start: int = 0, dtype: str = "uint8", layers: int = 1, top_k: int = 1) -> dict[str, Any]:
    arr = (np.arange(rows * layers * top_k) + 1 + start * layers * top_k).astype(dtype)
    return {"data": b64(arr.tobytes()), "shape": [rows, layers, top_k], "start": start, "dtype": dtype}


def vllm_body(
    ids: list[int] | None = None,
    lps: list[Any] | None = None,
    *,
    shape: str = "new",
    routed_experts: Any = None,
    finish: str = "stop",
    **choice_extra: Any,
) -> dict[str, Any]:
    ids = [7, 8] if ids is None else ids
    lps = [-0.1, -0.2] if lps is None else lps
    if shape == "new":
        content = [{"token_id": t, "logprob": lp, "rank": 1} for t, lp in zip(ids, lps, strict=False)]
    else:
        content = [{"token": f"token_id:{t}", "logprob": lp} for t, lp in zip(ids, lps, strict=False)]
    choice: dict[str, Any] = {"index": 0, "token_ids": ids, "logprobs": {"content": content}, "finish_reason": finish}
    if routed_experts is not None:
        choice["routed_experts"] = routed_experts
    choice.update(choice_extra)
    return {"request_id": "gen-test", "choices": [choice]}


def dynamo_body(
    engine_ids: list[int] | None = None,
    engine_lps: list[float] | None = None,
    *,
    chat_lps: list[float] | None = None,
    routed_experts: Any = None,
    nvext_routed: Any = None,
    finish: str = "stop",
) -> dict[str, Any]:
    engine: dict[str, Any] = {}
    if engine_ids is not None:
        engine["completion_token_ids"] = engine_ids
    if engine_lps is not None:
        engine["completion_logprobs"] = engine_lps
    if routed_experts is not None:
        engine["routed_experts"] = routed_experts
    nvext: dict[str, Any] = {"engine_data": engine}
    if nvext_routed is not None:
        nvext["routed_experts"] = nvext_routed
    logprobs = None if chat_lps is None else {"content": [{"token": "x", "logprob": lp} for lp in chat_lps]}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish,
                     "logprobs": logprobs}],
        "nvext": nvext,
    }  # fmt: skip


class Engine:
    """A scripted engine behind httpx.MockTransport; records every request."""

    def __init__(self, *responses: Any, models: Any = None) -> None:
        self.responses = list(responses)
        self.models = models
        self.requests: list[httpx.Request] = []
        self.model_gets = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/models":
            self.model_gets += 1
            if self.models is None:
                return httpx.Response(404, json={"error": {"message": "no"}})
            return httpx.Response(200, content=orjson.dumps(self.models))
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return httpx.Response(200, content=orjson.dumps(item))

    def client(self, base_url: str = BASE) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, transport=httpx.MockTransport(self.handler))

    @property
    def body(self) -> dict[str, Any]:
        return orjson.loads(self.requests[-1].content)  # type: ignore[no-any-return]

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_max_prompt_len_cache()
    servers_without_prompt_start().clear()
    yield
    clear_max_prompt_len_cache()
    servers_without_prompt_start().clear()


async def run(engine: Engine, renderer: Any = None, *, base_url: str = BASE, **kwargs: Any) -> GenerateResult:
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("model", "test-model")
    async with engine.client(base_url) as client:
        return await generate(client=client, renderer=renderer or FakeRenderer(), **kwargs)


# ------------------------------------------------------------------------------------------------ vLLM


async def test_vllm_builds_request_body_and_parses_response() -> None:
    engine = Engine(vllm_body(routed_experts=routed(4)))
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
    engine = Engine(vllm_body())
    await run(engine, sampling_params={"skip_special_tokens": True})
    assert engine.body["sampling_params"]["skip_special_tokens"] is True


async def test_old_style_token_id_logprobs_parse() -> None:
    out = await run(Engine(vllm_body(shape="old")))
    assert out["completion_logprobs"] == [-0.1, -0.2]


async def test_malformed_tool_calls_do_not_promote_finish_reason() -> None:
    renderer = FakeRenderer(tool_status=ToolCallParseStatus.INVALID_JSON)
    out = await run(Engine(vllm_body()), renderer, tools=TOOLS)
    assert out["finish_reason"] == "stop"
    assert len(out["tool_calls"]) == 1
    assert out["tool_calls"][0].status is ToolCallParseStatus.INVALID_JSON


async def test_length_finish_is_never_promoted() -> None:
    out = await run(Engine(vllm_body(finish="length")), tools=TOOLS)
    assert out["finish_reason"] == "length"


async def test_prebuilt_prompt_ids_skip_rendering_and_pass_attribution_through() -> None:
    engine = Engine(vllm_body())
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
        await run(Engine(vllm_body()), prompt_ids=[1, -2])


async def test_vllm_priority_and_salt_from_sampling_params_go_top_level() -> None:
    engine = Engine(vllm_body())
    await run(engine, sampling_params={"priority": 3, "cache_salt": "s"})
    assert engine.body["priority"] == 3
    assert engine.body["cache_salt"] == "s"
    assert "priority" not in engine.body["sampling_params"]
    assert "cache_salt" not in engine.body["sampling_params"]
    await run(engine, priority=-4, sampling_params={"priority": 3})
    assert engine.body["priority"] == -4


@pytest.mark.parametrize("base_url", ["http://engine:8000", "http://engine:8000/", "http://engine:8000/v1/"])
async def test_base_url_with_or_without_v1(base_url: str) -> None:
    engine = Engine(vllm_body(), dynamo_body([7], [-0.5]))
    await run(engine, base_url=base_url)
    assert str(engine.requests[-1].url) == VLLM_URL


async def test_extra_headers_are_sent() -> None:
    engine = Engine(vllm_body())
    await run(engine, extra_headers={"X-Session-ID": "abc"})
    assert engine.requests[-1].headers["x-session-id"] == "abc"


async def test_vllm_missing_token_ids_raises() -> None:
    body = vllm_body()
    del body["choices"][0]["token_ids"]
    with pytest.raises(MissingCompletionIdsError):
        await run(Engine(body))


async def test_vllm_null_logprobs_with_tokens_is_a_mismatch() -> None:
    body = vllm_body()
    body["choices"][0]["logprobs"] = None
    with pytest.raises(LogprobMismatchError) as info:
        await run(Engine(body))
    assert info.value.n_ids == 2
    assert info.value.n_logprobs == 0


async def test_vllm_logprob_count_mismatch_raises() -> None:
    with pytest.raises(LogprobMismatchError):
        await run(Engine(vllm_body([7, 8], [-0.1])))


async def test_empty_completion_is_valid() -> None:
    out = await run(Engine(vllm_body([], [])))
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
        await run(Engine(httpx.Response(200, content=raw)))
    assert info.value.field == field
    assert field in str(info.value)


async def test_old_style_token_mismatch_is_named() -> None:
    body = vllm_body(shape="old")
    body["choices"][0]["logprobs"]["content"][1]["token"] = "token_id:5"
    with pytest.raises(MalformedResponseError, match="misaligned"):
        await run(Engine(body))


@pytest.mark.parametrize(
    ("raw", "field"),
    [(b"not json", None), (b'{"request_id": "x"}', "choices"), (b'{"choices": []}', "choices"), (b"[1]", None),
     (b'{"choices": [1]}', "choices[0]")],
)  # fmt: skip
async def test_body_not_json_or_without_choices(raw: bytes, field: str | None) -> None:
    with pytest.raises(MalformedResponseError) as info:
        await run(Engine(httpx.Response(200, content=raw)))
    assert info.value.field == field


async def test_vllm_npy_routed_experts() -> None:
    import io

    arr = np.arange(4, dtype=np.uint16).reshape(4, 1, 1) + 300
    buf = io.BytesIO()
    np.save(buf, arr)
    out = await run(Engine(vllm_body(routed_experts=b64(buf.getvalue()))))
    re = out["routed_experts"]
    assert re is not None
    assert re.dtype == "uint16"
    assert re.shape == (4, 1, 1)
    assert re.start == 0
    assert re.to_numpy().ravel().tolist() == [300, 301, 302, 303]


async def test_vllm_server_trimmed_npy_routed_experts_gets_start_from_row_count() -> None:
    import io

    arr = np.array([3, 4], dtype=np.uint8).reshape(2, 1, 1)
    buf = io.BytesIO()
    np.save(buf, arr)
    out = await run(Engine(vllm_body(routed_experts=b64(buf.getvalue()))),
                    sampling_params={"routed_experts_prompt_start": 2})  # fmt: skip
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.shape == (2, 1, 1)


async def test_vllm_routed_experts_row_count_must_match_tokens() -> None:
    with pytest.raises(RoutedExpertsError, match="rows"):
        await run(Engine(vllm_body(routed_experts=routed(5))))


async def test_vllm_client_side_trim_when_server_returns_full_sequence() -> None:
    engine = Engine(vllm_body(routed_experts=routed(4)))
    out = await run(engine, sampling_params={"routed_experts_prompt_start": 3})
    assert engine.body["sampling_params"]["routed_experts_prompt_start"] == 3
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 3
    assert re.shape == (1, 1, 1)
    assert re.to_numpy().ravel().tolist() == [4]


# ------------------------------------------------------------------------------------------------ Dynamo


async def test_dynamo_request_body_shape() -> None:
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4)))
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
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport=name)
    assert str(engine.requests[-1].url) == DYN_URL


async def test_vllm_generate_alias() -> None:
    engine = Engine(vllm_body())
    await run(engine, transport="vllm_generate")
    assert str(engine.requests[-1].url) == VLLM_URL


async def test_dynamo_top_logprobs_only_when_more_than_one() -> None:
    from renderers.client.transports import DynamoTransport, WireRequest

    body = orjson.loads(DynamoTransport().build_body(WireRequest("m", [1], {"logprobs": 3})))
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 3
    body = orjson.loads(DynamoTransport().build_body(WireRequest("m", [1], {"logprobs": 1})))
    assert body["logprobs"] is True
    assert "top_logprobs" not in body


async def test_dynamo_forwards_extra_fields_and_drops_vllm_only_keys() -> None:
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(1, start=3)))
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
    engine = Engine(body)
    await run(engine, transport=transport, priority=priority)
    sent = engine.body["priority"] if transport == "vllm" else engine.body["nvext"]["agent_hints"]["priority"]
    assert sent == (priority if transport == "vllm" else -priority)
    assert -(2**31) <= sent <= 2**31 - 1


async def test_dynamo_drops_an_empty_stop_list_but_keeps_a_non_empty_one() -> None:
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2]), dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport="dynamo", sampling_params={"stop": []})
    assert "stop" not in engine.body
    await run(engine, transport="dynamo", sampling_params={"stop": ["</s>"]})
    assert engine.body["stop"] == ["</s>"]


async def test_dynamo_merges_caller_nvext() -> None:
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2]))
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
    engine = Engine(dynamo_body([7, 8], [-0.1, -0.2]))
    await run(engine, transport="dynamo", sampling_params={"cache_salt": "ckpt-9", "priority": 5})
    assert engine.body["nvext"]["cache_salt"] == "ckpt-9"
    assert engine.body["nvext"]["agent_hints"] == {"priority": -5}
    assert "cache_salt" not in engine.body
    assert "priority" not in engine.body


async def test_dynamo_without_completion_ids_raises() -> None:
    with pytest.raises(MissingCompletionIdsError, match="completion token ids"):
        await run(Engine(dynamo_body(chat_lps=[-0.1])), transport="dynamo")


async def test_dynamo_present_but_empty_completion() -> None:
    out = await run(Engine(dynamo_body([], [], chat_lps=[])), transport="dynamo")
    assert out["completion_ids"] == []
    assert out["completion_logprobs"] == []


async def test_dynamo_prefers_engine_ids_over_choice_token_ids() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2])
    body["choices"][0]["token_ids"] = [99, 99]
    out = await run(Engine(body), transport="dynamo")
    assert out["completion_ids"] == [7, 8]


async def test_dynamo_id_fallbacks() -> None:
    body = dynamo_body(chat_lps=[-0.1, -0.2])
    body["nvext"] = {"completion_token_ids": [5, 6]}
    assert (await run(Engine(body), transport="dynamo"))["completion_ids"] == [5, 6]
    body = dynamo_body(chat_lps=[-0.1, -0.2])
    del body["nvext"]
    body["choices"][0]["token_ids"] = [4, 6]
    assert (await run(Engine(body), transport="dynamo"))["completion_ids"] == [4, 6]


async def test_dynamo_engine_logprobs_win_over_chat() -> None:
    out = await run(Engine(dynamo_body([7, 8], [-1.0, -2.0], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert out["completion_logprobs"] == [-1.0, -2.0]


async def test_dynamo_falls_back_to_chat_logprobs_rounded_to_float32() -> None:
    out = await run(Engine(dynamo_body([7, 8], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert out["completion_logprobs"] == [float(np.float32(-0.1)), float(np.float32(-0.2))]


def test_dynamo_chat_echo_recovers_the_engine_logprobs_exactly_on_a_real_body() -> None:
    """Real Dynamo 1.6.1 + dynamo.vllm: the chat echo prints float32 text (-7.6456947), engine_data the double
    (-7.645694732666016). Without engine_data's logprobs the client must still return the engine's values."""
    from renderers.client.transports.dynamo import DynamoTransport
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
        await run(Engine(dynamo_body([7, 8], chat_lps=[-0.1])), transport="dynamo")


async def test_dynamo_present_empty_engine_logprobs_raise_for_nonempty_completion() -> None:
    with pytest.raises(LogprobMismatchError) as info:
        await run(Engine(dynamo_body([7, 8], [], chat_lps=[-0.1, -0.2])), transport="dynamo")
    assert info.value.field == "nvext.engine_data.completion_logprobs"


async def test_dynamo_placeholder_nvext_routed_experts_falls_back_to_engine() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(1, start=3), nvext_routed="placeholder")
    out = await run(Engine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 3})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 3
    assert re.shape == (1, 1, 1)


async def test_dynamo_nvext_routed_experts_channel() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], nvext_routed=routed(4))
    out = await run(Engine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 2})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.to_numpy().ravel().tolist() == [3, 4]


async def test_dynamo_first_turn_keeps_full_sequence() -> None:
    out = await run(Engine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4))), transport="dynamo")
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 0
    assert re.shape == (4, 1, 1)


async def test_dynamo_already_trimmed_is_not_trimmed_twice() -> None:
    body = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(2, start=2))
    out = await run(Engine(body), transport="dynamo", sampling_params={"routed_experts_prompt_start": 2})
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 2
    assert re.to_numpy().ravel().tolist() == [3, 4]


async def test_dynamo_unknown_dtype_raises() -> None:
    bad = routed(4)
    bad["dtype"] = "float16"
    with pytest.raises(RoutedExpertsError, match="dtype"):
        await run(Engine(dynamo_body([7, 8], [-0.1, -0.2], routed_experts=bad)), transport="dynamo")


PROMPT_START_400 = httpx.Response(
    400,
    json={
        "message": "Failed to deserialize the JSON body into the target type: nvext: unknown field "
        "`routed_experts_prompt_start`, expected one of `greed_sampling`, `token_data` at line 1 column 200",
        "type": "Bad Request",
        "code": 400,
    },
)


async def test_dynamo_prompt_start_rejected_once_then_remembered() -> None:
    ok = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4))
    engine = Engine(PROMPT_START_400, ok, ok)
    sp = {"routed_experts_prompt_start": 3}
    out = await run(engine, transport="dynamo", sampling_params=sp)
    bodies = engine.bodies()
    assert len(bodies) == 2
    assert bodies[0]["nvext"]["routed_experts_prompt_start"] == 3
    assert "routed_experts_prompt_start" not in bodies[1]["nvext"]
    re = out["routed_experts"]
    assert re is not None
    assert re.start == 3
    assert re.shape == (1, 1, 1)
    assert "http://engine:8000" in servers_without_prompt_start()
    await run(engine, transport="dynamo", sampling_params=sp)
    assert len(engine.requests) == 3
    assert "routed_experts_prompt_start" not in engine.body["nvext"]


async def test_dynamo_other_400_is_not_retried() -> None:
    err = httpx.Response(400, json={"message": "Validation: Unsupported parameter(s): `foo`", "type": "Bad Request",
                                    "code": 400})  # fmt: skip
    engine = Engine(err)
    with pytest.raises(EngineHTTPError) as info:
        await run(engine, transport="dynamo", sampling_params={"routed_experts_prompt_start": 3})
    assert len(engine.requests) == 1
    assert info.value.status == 400
    assert "Unsupported parameter" in info.value.message
    assert info.value.error_type == "Bad Request"


async def test_dynamo_multimodal_raises() -> None:
    engine = Engine(dynamo_body([7], [-0.1]))
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(NotImplementedError, match="multimodal"):
        await run(engine, transport="dynamo", messages=msgs)
    assert engine.requests == []


# ------------------------------------------------------------------------------------------------ arguments


async def test_unknown_transport_raises_before_rendering() -> None:
    engine = Engine(vllm_body())
    renderer = FakeRenderer()
    with pytest.raises(ValueError, match="Unknown renderer transport"):
        await run(engine, renderer, transport="grpc")
    assert renderer.render_calls == []
    assert engine.requests == []
    assert engine.model_gets == 0


async def test_tools_on_renderer_without_tool_support() -> None:
    with pytest.raises(ValueError, match="does not support tools"):
        await run(Engine(vllm_body()), FakeRenderer(supports_tools=False), tools=TOOLS)


@pytest.mark.parametrize(
    "kwargs",
    [{"priority": "high"}, {"priority": True}, {"sampling_params": {"routed_experts_prompt_start": -1}},
     {"timeout": 0}, {"cache_salt": 3}, {"sampling_params": [1]}, {"max_prompt_len": 0},
     {"priority": 2**31}, {"priority": -(2**31)}, {"sampling_params": {"priority": 2**40}}],
)  # fmt: skip
async def test_bad_arguments_are_value_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        await run(Engine(vllm_body()), **kwargs)


async def test_unsupported_client_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="client must be"):
        await generate(client=object(), renderer=FakeRenderer(), messages=MESSAGES, model="m")


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("transport", ["vllm", "dynamo"])
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), EngineConnectionError),
        (httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
         EngineConnectionError),
        (httpx.ReadTimeout("slow"), EngineTimeoutError),
        (ValueError("boom"), EngineConnectionError),
    ],
)  # fmt: skip
async def test_transport_exceptions_are_mapped(transport: str, exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info:
        await run(Engine(exc), transport=transport, max_prompt_len=100)
    assert info.value.__cause__ is exc


async def test_timeout_error_is_also_builtin_timeout() -> None:
    with pytest.raises(TimeoutError):
        await run(Engine(httpx.ReadTimeout("slow")))


async def test_vllm_error_envelope() -> None:
    raw = b'{"error":{"message":"The model `nope` does not exist.","type":"NotFoundError","param":"model","code":404}}'
    with pytest.raises(EngineHTTPError) as info:
        await run(Engine(httpx.Response(404, content=raw)))
    err = info.value
    assert err.status == 404
    assert err.message == "The model `nope` does not exist."
    assert err.body == raw
    assert err.error_type == "NotFoundError"
    assert err.url == VLLM_URL
    assert err.retry_after is None


async def test_dynamo_flat_error_and_retry_after() -> None:
    resp = httpx.Response(529, json={"message": "Overloaded", "type": "Overloaded", "code": 529},
                          headers={"Retry-After": "2.5"})  # fmt: skip
    with pytest.raises(EngineHTTPError) as info:
        await run(Engine(resp), transport="dynamo")
    assert info.value.status == 529
    assert info.value.message == "Overloaded"
    assert info.value.retry_after == 2.5


async def test_non_json_error_body() -> None:
    with pytest.raises(EngineHTTPError) as info:
        await run(Engine(httpx.Response(502, content=b"<html>bad gateway</html>")))
    assert info.value.status == 502
    assert "bad gateway" in info.value.message


@pytest.mark.parametrize(
    "message",
    ["The decoder prompt (length 600) is longer than the maximum model length of 512. Make sure ...",
     "This model's maximum context length is 512 tokens. However, you requested 600 tokens."],
)  # fmt: skip
async def test_overlong_400_becomes_overlong_prompt_error(message: str) -> None:
    resp = httpx.Response(400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}})
    with pytest.raises(OverlongPromptError) as info:
        await run(Engine(resp))
    assert info.value.prompt_len == 3
    assert info.value.max_prompt_len == 512
    assert info.value.detail == message


# ------------------------------------------------------------------------------------------------ limits


async def test_explicit_cap_exceeded_raises_before_sending() -> None:
    engine = Engine(vllm_body())
    with pytest.raises(OverlongPromptError) as info:
        await run(engine, FakeRenderer(prompt_ids=list(range(10))), max_prompt_len=4)
    assert info.value.prompt_len == 10
    assert info.value.max_prompt_len == 4
    assert engine.requests == []
    assert engine.model_gets == 0


async def test_prompt_at_cap_is_allowed() -> None:
    engine = Engine(vllm_body())
    await run(engine, FakeRenderer(prompt_ids=[1, 2, 3, 4]), max_prompt_len=4)
    assert len(engine.requests) == 1


@pytest.mark.parametrize(
    ("card", "transport"),
    [({"id": "test-model", "max_model_len": 4}, "vllm"), ({"id": "test-model", "context_window": 4}, "dynamo")],
)
async def test_discovered_cap_from_models_endpoint(card: dict[str, Any], transport: str) -> None:
    engine = Engine(vllm_body(), models={"object": "list", "data": [{"id": "other", "max_model_len": 1}, card]})
    for _ in range(2):
        with pytest.raises(OverlongPromptError) as info:
            await run(engine, FakeRenderer(prompt_ids=list(range(10))), transport=transport)
        assert info.value.max_prompt_len == 4
    assert engine.model_gets == 1
    assert engine.requests == []


async def test_discovery_failure_is_cached_and_request_still_sent() -> None:
    engine = Engine(vllm_body())
    await run(engine)
    await run(engine)
    assert engine.model_gets == 1
    assert len(engine.requests) == 2
    assert max_prompt_len_cache() == {("http://engine:8000", "test-model"): None}


async def test_concurrent_discovery_asks_once() -> None:
    engine = Engine(vllm_body(), models={"data": [{"id": "test-model", "max_model_len": 100}]})
    async with engine.client() as client:
        await asyncio.gather(
            *(generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="test-model") for _ in range(8))
        )
    assert engine.model_gets == 1
    assert len(engine.requests) == 8


# ------------------------------------------------------------------------------------------------ pools, openai


async def test_pool_renders_and_parses_in_worker_threads() -> None:
    pool = FakePool()
    await run(Engine(vllm_body()), pool)
    assert pool.threads
    assert all(name != threading.main_thread().name for name in pool.threads)


async def test_plain_renderer_runs_inline() -> None:
    renderer = FakeRenderer()
    await run(Engine(vllm_body()), renderer)
    assert set(renderer.threads) == {threading.current_thread().name}


async def test_openai_client_is_reused() -> None:
    openai = pytest.importorskip("openai")
    engine = Engine(vllm_body(), dynamo_body([7, 8], [-0.1, -0.2]))
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(engine.handler))
    client = openai.AsyncOpenAI(base_url="http://engine:8000/v1", api_key="sk-test", http_client=http_client)
    out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    assert out["completion_ids"] == [7, 8]
    req = engine.requests[-1]
    assert str(req.url) == VLLM_URL
    assert req.headers["authorization"] == "Bearer sk-test"
    await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m", transport="dynamo")
    assert str(engine.requests[-1].url) == DYN_URL
    await client.close()
