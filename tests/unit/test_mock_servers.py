"""The two mock servers over HTTP: shapes, validation, determinism across mocks and concurrency, routed experts."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import numpy as np
import pytest

from mockservers.server import MockServer

PROMPT = [2302, 84, 326, 81, 198, 283, 75, 316, 2303, 198, 2302, 64, 2032, 198]


def post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, bytes]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def vllm_body(prompt: list[Any], **sp: Any) -> dict[str, Any]:
    return {"model": "tiny-qwen3", "token_ids": prompt, "sampling_params": {"max_tokens": 16, **sp}}


def dynamo_body(prompt: list[int], extra: list[str] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "model": "tiny-qwen3",
        "messages": [{"role": "user", "content": ""}],
        "stream": False,
        "nvext": {"token_data": prompt, "extra_fields": extra or ["engine_data"]},
        "max_completion_tokens": 16,
        **top,
    }


# ---- basics and fixtures ------------------------------------------------------------------------------------
def test_sync_fixture_models_and_health(mock_vllm: MockServer, mock_dynamo: MockServer) -> None:
    status, body = get(mock_vllm.url + "/v1/models")
    card = json.loads(body)["data"][0]
    assert status == 200
    assert card["id"] == "tiny-qwen3"
    assert card["max_model_len"] == 2048
    status, body = get(mock_dynamo.url + "/v1/models")
    card = json.loads(body)["data"][0]
    assert card == {**card, "owned_by": "nvidia", "context_window": 2048}
    assert "max_model_len" not in card
    assert get(mock_vllm.url + "/health") == (200, b"")
    assert get(mock_dynamo.url + "/live")[0] == 200
    assert json.loads(get(mock_dynamo.url + "/health")[1])["status"] == "healthy"
    status, body = get(mock_dynamo.url + "/ready")
    assert status == 404
    assert json.loads(body) == {
        "message": "Route not found: GET /ready",
        "type": "Not Found",
        "code": 404,
    }


async def test_async_fixture(mock_dynamo: MockServer) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(mock_dynamo.url + "/v1/chat/completions", json=dynamo_body(PROMPT)) as r,
    ):
        data = await r.json()
    assert r.status == 200
    assert data["id"].startswith("chatcmpl-")
    assert data["nvext"]["engine_data"]["prompt_token_ids"] == PROMPT


def test_prime_rl_shape(mock_vllm: MockServer) -> None:
    status, body = post(mock_vllm.url + "/inference/v1/generate", vllm_body(PROMPT, logprobs=3, temperature=0))
    data = json.loads(body)
    assert status == 200
    assert data["request_id"].startswith("generate-tokens-")
    choice = data["choices"][0]
    assert set(choice) == {"index", "logprobs", "finish_reason", "token_ids", "routed_experts"}
    # MoE by default: two layers of top-8 routing for every position the model ran (all but the last token).
    n = len(PROMPT) + len(choice["token_ids"]) - 1
    assert {k: v for k, v in choice["routed_experts"].items() if k != "data"} == {
        "shape": [n, 2, 8],
        "start": 0,
        "dtype": "uint8",
    }
    assert len(base64.b64decode(choice["routed_experts"]["data"])) == n * 2 * 8
    for tid, entry in zip(choice["token_ids"], choice["logprobs"]["content"], strict=True):
        assert entry["token"] == f"token_id:{tid}"
        assert entry["bytes"] is None
        assert entry["top_logprobs"][0] == {"token": entry["token"], "logprob": entry["logprob"], "bytes": None}
        assert len(entry["top_logprobs"]) == 3
    assert data["usage"]["prompt_tokens"] == len(PROMPT)


# ---- determinism ----------------------------------------------------------------------------------------------
def _vllm_result(server: MockServer, prompt: list[int], **sp: Any) -> tuple[list[int], list[float], str]:
    _, body = post(server.url + "/inference/v1/generate", vllm_body(prompt, logprobs=1, **sp))
    choice = json.loads(body)["choices"][0]
    return choice["token_ids"], [e["logprob"] for e in choice["logprobs"]["content"]], choice["finish_reason"]


def _dynamo_result(server: MockServer, prompt: list[int], **top: Any) -> tuple[list[int], list[float], str]:
    _, body = post(server.url + "/v1/chat/completions", dynamo_body(prompt, logprobs=True, **top))
    data = json.loads(body)
    engine = data["nvext"]["engine_data"]
    return engine["completion_token_ids"], engine["completion_logprobs"], data["choices"][0]["finish_reason"]


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"seed": 11}, {"temperature": 0.7, "top_p": 0.9}, {}])
def test_same_tokens_on_both_mocks(mock_vllm: MockServer, mock_dynamo: MockServer, sampling: dict[str, Any]) -> None:
    v = _vllm_result(mock_vllm, PROMPT, max_tokens=40, **sampling)
    top = dict(sampling.items())
    top["max_completion_tokens"] = 40
    d = _dynamo_result(mock_dynamo, PROMPT, **top)
    assert v == d


async def test_determinism_under_concurrency(mock_vllm: MockServer, mock_dynamo: MockServer) -> None:
    rng = random.Random(0)
    prompts = [[rng.randrange(2301) for _ in range(rng.randint(1, 40))] for _ in range(12)]
    expected = {i: _vllm_result(mock_vllm, p, max_tokens=24, seed=i) for i, p in enumerate(prompts)}
    jobs = [(i, kind) for i in range(len(prompts)) for kind in ("vllm", "dynamo")] * 3
    rng.shuffle(jobs)

    async def one(s: aiohttp.ClientSession, i: int, kind: str) -> tuple[int, Any]:
        if kind == "vllm":
            url = mock_vllm.url + "/inference/v1/generate"
            async with s.post(url, json=vllm_body(prompts[i], logprobs=1, max_tokens=24, seed=i)) as r:
                c = (await r.json())["choices"][0]
                return i, (c["token_ids"], [e["logprob"] for e in c["logprobs"]["content"]], c["finish_reason"])
        body = dynamo_body(prompts[i], logprobs=True, seed=i, max_completion_tokens=24)
        async with s.post(mock_dynamo.url + "/v1/chat/completions", json=body) as r:
            data = await r.json()
            e = data["nvext"]["engine_data"]
            return i, (e["completion_token_ids"], e["completion_logprobs"], data["choices"][0]["finish_reason"])

    async with aiohttp.ClientSession() as s:
        results = await asyncio.gather(*(one(s, i, k) for i, k in jobs))
    for i, got in results:
        assert got == expected[i]


def test_chat_logprobs_are_the_float32_print_of_the_engine_values(mock_dynamo: MockServer) -> None:
    _, body = post(mock_dynamo.url + "/v1/chat/completions", dynamo_body(PROMPT, logprobs=True, top_logprobs=3))
    data = json.loads(body)
    chat = [e["logprob"] for e in data["choices"][0]["logprobs"]["content"]]
    engine = data["nvext"]["engine_data"]["completion_logprobs"]
    assert [np.float32(x) for x in chat] == [np.float32(x) for x in engine]
    for tid, entry in zip(
        data["nvext"]["engine_data"]["completion_token_ids"], data["choices"][0]["logprobs"]["content"], strict=True
    ):
        assert entry["token_id"] == tid
        assert entry["top_logprobs"][0]["token"] == entry["token"]


# ---- context limits -------------------------------------------------------------------------------------------
def test_context_clamp_and_overlong_prompt(mock_server_factory: Any) -> None:
    v = mock_server_factory("vllm", max_model_len=64, eos_period=0)
    status, body = post(v.url + "/inference/v1/generate", vllm_body([5, 6, 7], max_tokens=5000))
    choice = json.loads(body)["choices"][0]
    assert status == 200
    assert len(choice["token_ids"]) == 61
    assert choice["finish_reason"] == "length"
    status, body = post(v.url + "/inference/v1/generate", vllm_body(list(range(64))))
    err = json.loads(body)["error"]
    assert status == 400
    assert "maximum model length of 64" in err["message"]
    assert err["type"] == "BadRequestError"
    d = mock_server_factory("dynamo", max_model_len=64, eos_period=0)
    status, body = post(d.url + "/v1/chat/completions", {**dynamo_body([5, 6, 7]), "max_completion_tokens": 5000})
    assert status == 200
    assert json.loads(body)["usage"]["completion_tokens"] == 61
    status, body = post(d.url + "/v1/chat/completions", dynamo_body(list(range(70))))
    assert status == 400
    assert "maximum model length" in json.loads(body)["message"]


# ---- routed experts -------------------------------------------------------------------------------------------
def test_prime_rl_routed_experts_object(mock_server_factory: Any) -> None:
    v = mock_server_factory("vllm", moe_layers=3, moe_top_k=2, num_experts=300)
    status, body = post(v.url + "/inference/v1/generate", vllm_body(PROMPT, routed_experts_prompt_start=5))
    assert status == 200
    assert b'"routed_experts":{"data":"' in body
    choice = json.loads(body)["choices"][0]
    re = choice["routed_experts"]
    assert list(re) == ["data", "shape", "start", "dtype"]
    rows = len(PROMPT) + len(choice["token_ids"]) - 1 - 5
    assert re["shape"] == [rows, 3, 2]
    assert re["start"] == 5
    assert re["dtype"] == "uint16"
    arr = np.frombuffer(base64.b64decode(re["data"]), dtype=re["dtype"]).reshape(re["shape"])
    assert int(arr.max()) < 300


def test_vllm_032_routed_experts_npy(mock_server_factory: Any) -> None:
    v = mock_server_factory("vllm", vllm_profile="vllm-0.32", moe_layers=2, moe_top_k=2, num_experts=8)
    _, body = post(v.url + "/inference/v1/generate", vllm_body(PROMPT, max_tokens=4))
    choice = json.loads(body)["choices"][0]
    arr = np.load(io.BytesIO(base64.b64decode(choice["routed_experts"])))
    assert arr.shape == (len(PROMPT) + len(choice["token_ids"]) - 1, 2, 2)
    assert arr.dtype == np.uint8


def test_dynamo_routed_experts_modes(mock_server_factory: Any) -> None:
    full = mock_server_factory("dynamo", moe_layers=2, moe_top_k=2, num_experts=8, routed_experts_mode="full")
    extra = ["engine_data", "routed_experts"]
    status, body = post(full.url + "/v1/chat/completions", dynamo_body(PROMPT, extra))
    nv = json.loads(body)["nvext"]
    assert status == 200
    assert nv["routed_experts"] == nv["engine_data"]["routed_experts"]
    n_out = len(nv["engine_data"]["completion_token_ids"])
    assert nv["routed_experts"]["start"] == 0
    assert nv["routed_experts"]["shape"][0] == len(PROMPT) + n_out - 1
    bad = dynamo_body(PROMPT, extra)
    bad["nvext"]["routed_experts_prompt_start"] = 4
    status, body = post(full.url + "/v1/chat/completions", bad)
    message = json.loads(body)["message"]
    assert status == 400
    assert "unknown field `routed_experts_prompt_start`, expected one of `greed_sampling`" in message
    trimmed = mock_server_factory("dynamo", moe_layers=2, moe_top_k=2, num_experts=8, routed_experts_mode="trimmed")
    status, body = post(trimmed.url + "/v1/chat/completions", bad)
    re = json.loads(body)["nvext"]["routed_experts"]
    assert status == 200
    assert re["start"] == 4
    assert re["shape"][0] == len(PROMPT) + n_out - 1 - 4
    whole = np.frombuffer(base64.b64decode(nv["routed_experts"]["data"]), np.uint8).reshape(
        nv["routed_experts"]["shape"]
    )
    part = np.frombuffer(base64.b64decode(re["data"]), np.uint8).reshape(re["shape"])
    assert np.array_equal(whole[4:], part)
    absent = mock_server_factory("dynamo", moe_layers=2, routed_experts_mode="absent")
    nv = json.loads(post(absent.url + "/v1/chat/completions", dynamo_body(PROMPT, extra))[1])["nvext"]
    assert "routed_experts" not in nv
    assert "routed_experts" not in nv["engine_data"]


# ---- validation and malformed requests -------------------------------------------------------------------------
# Status and ``param`` as the real vLLM 0.32 answers them (checked against it by the generated differential).
VLLM_BAD: list[tuple[Any, int, str | None]] = [
    ({"model": "tiny-qwen3", "sampling_params": {}}, 400, "body.token_ids"),
    (vllm_body([]), 400, "body.token_ids"),
    (vllm_body([1, -2]), 400, "body.token_ids"),  # a value_error of the whole list
    (vllm_body([1, "x"]), 400, "body.token_ids.1"),
    (vllm_body([1, 2.5]), 400, "body.token_ids.1"),
    (vllm_body([99999]), 400, None),
    ({"model": "tiny-qwen3", "token_ids": "abc", "sampling_params": {}}, 400, "body.token_ids"),
    ({"model": "tiny-qwen3", "token_ids": [1]}, 400, "body.sampling_params"),
    (vllm_body([1], max_tokens="x"), 400, "body.sampling_params"),  # is_instance_of SamplingParams comes first
    (vllm_body([1], max_tokens=0), 400, "max_tokens"),
    (vllm_body([1], temperature=-1), 400, "temperature"),
    (vllm_body([1], logprobs=21), 400, "logprobs"),
    (vllm_body([1], top_p=0), 400, "top_p"),
    (vllm_body([1], stop_token_ids="x"), 400, "body.sampling_params"),
    ({**vllm_body([1]), "model": "nope"}, 404, "model"),
    ([1, 2, 3], 400, "body"),
    ("just a string", 400, "body"),
]


@pytest.mark.parametrize(("body", "status", "param"), VLLM_BAD)
def test_vllm_rejects_malformed_requests(mock_vllm: MockServer, body: Any, status: int, param: str | None) -> None:
    got, raw = post(mock_vllm.url + "/inference/v1/generate", body)
    err = json.loads(raw)["error"]
    assert got == status
    assert err["code"] == status
    assert err["param"] == param
    assert set(err) == {"message", "type", "param", "code"}


def test_vllm_bad_json_content_type_unknown_keys(mock_vllm: MockServer) -> None:
    status, raw = post(mock_vllm.url + "/inference/v1/generate", None, raw=b'{"token_ids": [1,')
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "Bad Request"
    status, raw = post(mock_vllm.url + "/inference/v1/generate", None, {"Content-Type": "text/plain"}, raw=b"{}")
    assert status == 400
    assert "Only 'application/json'" in json.loads(raw)["error"]["message"]
    body = vllm_body([5], foo=1)
    body["bar"] = {"x": 1}
    assert post(mock_vllm.url + "/inference/v1/generate", body)[0] == 200


def test_body_limit_gives_413(mock_server_factory: Any) -> None:
    v = mock_server_factory("vllm", max_body_bytes=1000)
    status, raw = post(v.url + "/inference/v1/generate", vllm_body(list(range(1000))))
    assert status == 413
    assert json.loads(raw)["error"]["code"] == 413
    d = mock_server_factory("dynamo", max_body_bytes=1000)
    status, raw = post(d.url + "/v1/chat/completions", dynamo_body(list(range(1000))))
    assert status == 413
    assert json.loads(raw)["code"] == 413


DESERIALIZE = "Failed to deserialize the JSON body into the target type: "
# Texts as the real 1.6.1 frontend words them (serde_json's, with the position; see mockservers/dynamo/rules.py).
DYN_BAD: list[tuple[Any, int, str]] = [
    ({**dynamo_body(PROMPT), "messages": []}, 400, "Validation: The 'messages' field cannot be empty"),
    (
        {**dynamo_body(PROMPT), "return_token_ids": True, "priority": 1},
        400,
        "Unsupported parameter(s): `priority`, `return",
    ),
    ({**dynamo_body(PROMPT), "model": "nope"}, 404, "Model not found"),
    ({**dynamo_body(PROMPT), "max_completion_tokens": -1}, 400, "invalid value: integer `-1`, expected u32"),
    ({**dynamo_body(PROMPT), "logprobs": 1}, 400, "invalid type: integer `1`, expected a boolean at line 1 column"),
    ({**dynamo_body(PROMPT), "nvext": {"token_data": [1, -1]}}, 400, "invalid value: integer `-1`, expected u32 at"),
    ({**dynamo_body(PROMPT), "nvext": {"token_data": [999999]}}, 400, "Invalid request"),
    # a final message without text cannot be continued (real 1.6.1: also with token_data)
    ({**dynamo_body(PROMPT), "add_generation_prompt": False, "continue_final_message": True}, 400, "Invalid request"),
    ({**dynamo_body(PROMPT), "nvext": ["a"]}, 400, 'invalid type: string "a", expected a boolean at'),
    ({**dynamo_body(PROMPT), "web_search_options": []}, 400, "invalid length 0, expected struct WebSearchOptions"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "missing field `model`"),
    ([1, 2], 400, "Failed to deserialize"),
]


@pytest.mark.parametrize(("body", "status", "text"), DYN_BAD)
def test_dynamo_rejects_malformed_requests(mock_dynamo: MockServer, body: Any, status: int, text: str) -> None:
    got, raw = post(mock_dynamo.url + "/v1/chat/completions", body)
    err = json.loads(raw)
    assert got == status
    assert set(err) == {"message", "type", "code"}
    assert err["code"] == status
    assert text in err["message"]


def test_dynamo_continues_a_final_message_with_text(mock_dynamo: MockServer) -> None:
    body = {**dynamo_body(PROMPT), "add_generation_prompt": False, "continue_final_message": True}
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    assert post(mock_dynamo.url + "/v1/chat/completions", body)[0] == 200


def test_dynamo_passthrough_and_lax(mock_dynamo: MockServer, mock_server_factory: Any) -> None:
    body = {**dynamo_body(PROMPT), "stop_token_ids": [5], "cache_salt": "s", "skip_special_tokens": False, "top_k": 5}
    assert post(mock_dynamo.url + "/v1/chat/completions", body)[0] == 200
    status, raw = post(mock_dynamo.url + "/v1/chat/completions", None, raw=b"{nope")
    assert status == 400
    message = json.loads(raw)["message"]
    assert (
        message == "Failed to deserialize the JSON body into the target type: key must be a string at line 1 column 2"
    )
    lax = mock_server_factory("dynamo", lax_validation=True)
    assert post(lax.url + "/v1/chat/completions", {**dynamo_body(PROMPT), "return_token_ids": True})[0] == 200


def test_dynamo_messages_without_token_data(mock_dynamo: MockServer) -> None:
    body = {"model": "tiny-qwen3", "messages": [{"role": "user", "content": "hello world"}], "max_tokens": 4}
    body["nvext"] = {"extra_fields": ["engine_data", "completion_token_ids"]}
    data = json.loads(post(mock_dynamo.url + "/v1/chat/completions", body)[1])
    prompt = data["nvext"]["engine_data"]["prompt_token_ids"]
    assert prompt[0] == 2302
    assert prompt[-1] == 198
    assert data["usage"]["prompt_tokens"] == len(prompt)
    assert data["nvext"]["completion_token_ids"] == data["nvext"]["engine_data"]["completion_token_ids"]


def test_streams(mock_vllm: MockServer, mock_dynamo: MockServer) -> None:
    _, raw = post(
        mock_vllm.url + "/inference/v1/generate", {**vllm_body(PROMPT, max_tokens=5, ignore_eos=True), "stream": True}
    )
    events = [e for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert len(events) == 6
    ids = [json.loads(e[6:])["choices"][0]["token_ids"][0] for e in events[:-1]]
    assert ids == _vllm_result(mock_vllm, PROMPT, max_tokens=5, ignore_eos=True)[0]
    body = {**dynamo_body(PROMPT, ignore_eos=True), "stream": True, "max_completion_tokens": 5}
    _, raw = post(mock_dynamo.url + "/v1/chat/completions", body)
    chunks = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e and e != "data: [DONE]"]
    assert chunks[-1]["nvext"]["engine_data"]["completion_token_ids"] == ids
