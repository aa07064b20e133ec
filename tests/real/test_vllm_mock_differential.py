"""The mock vLLM (profile ``vllm-0.32``) against a real vLLM 0.32, request by request (``nox -s real_vllm``).

Each request of ``REQUESTS`` goes to the real server and to a mock configured like it (same served model name,
same ``max_model_len`` read from the real ``/v1/models``). Values differ (random weights on one side, the mock's
engine on the other), but these must be equal: the HTTP status; for errors the whole envelope ``{"error":
{message, type, param, code}}`` (the messages are deterministic and the mock reproduces them verbatim); for
successes the set of keys at every level (``shape``), the token counts in ``usage`` and the finish reason (the
mock never stops early, so the real side must not have sampled an end-of-sequence id: asserted, not assumed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mockservers.server import MockServer
from tests.conformance.test_mock_recordings import shape

pytestmark = pytest.mark.real_vllm

PROMPT = [2302, 84, 326, 81, 198, 283, 75, 316, 454, 81, 75, 67, 2303, 198, 2302, 64, 2032, 198]
EOS_IDS = (2301, 2303)
GENERATE = "/inference/v1/generate"


def _requests(model: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """name -> (method, path, body). The names follow the recordings in tests/conformance/recordings."""
    gen: dict[str, dict[str, Any]] = {
        "generate": {
            "token_ids": PROMPT,
            "sampling_params": {"max_tokens": 8, "logprobs": 1, "temperature": 1.0, "seed": 0},
        },
        "generate_greedy": {
            "token_ids": [5, 6, 7, 8],
            "sampling_params": {"max_tokens": 4, "logprobs": 0, "temperature": 0},
        },
        "generate_top2": {
            "token_ids": [5, 6, 7, 8],
            "sampling_params": {"max_tokens": 2, "logprobs": 2, "temperature": 0},
            "return_token_ids": True,
        },
        "generate_no_logprobs": {"token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 3, "temperature": 0}},
        "generate_stop_token_ids": {
            "token_ids": [5, 6, 7],
            "sampling_params": {"max_tokens": 3, "temperature": 0, "logprobs": 1, "stop_token_ids": [2303, 2301]},
        },
        "generate_unknown_top": {"token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 2}, "foo_bar": 1},
        "generate_unknown_sp": {"token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 2, "foo_bar": 1}},
        "generate_wrong_model": {"model": "nope", "token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 2}},
        "generate_empty": {"token_ids": [], "sampling_params": {"max_tokens": 2}},
        "generate_oov": {"token_ids": [999999], "sampling_params": {"max_tokens": 2}},
        "generate_oov_vocab_size": {"token_ids": [5, 2304], "sampling_params": {"max_tokens": 2}},
        "generate_too_long": {"token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 5000, "temperature": 0}},
        "generate_stream": {
            "token_ids": [5, 6, 7, 8],
            "stream": True,
            "sampling_params": {"max_tokens": 3, "logprobs": 1, "temperature": 0},
        },
        "generate_text": {
            "token_ids": [5, 6, 7, 8],
            "output_mode": "text",
            "sampling_params": {"max_tokens": 4, "logprobs": 1, "temperature": 0},
        },
    }
    out: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        name: ("POST", GENERATE, {"model": model, **body}) for name, body in gen.items()
    }
    out.update({"models": ("GET", "/v1/models", None), "health": ("GET", "/health", None)})
    out["version"] = ("GET", "/version", None)
    return out


NAMES = list(_requests("tiny"))


@pytest.fixture(scope="module")
def max_model_len(real_vllm_url: str, real_vllm_model: str) -> int:
    models = httpx.get(f"{real_vllm_url}/v1/models", timeout=10.0).json()["data"]
    return int(next(m["max_model_len"] for m in models if m["id"] == real_vllm_model))


@pytest.fixture(scope="module")
def mock_url(real_vllm_model: str, max_model_len: int) -> Iterator[str]:
    settings: dict[str, Any] = {"model": real_vllm_model, "max_model_len": max_model_len, "vllm_profile": "vllm-0.32"}
    # the real tiny model is dense (the mocks are MoE by default); eos_period=0: it never stops early here
    server = MockServer("vllm", **settings, eos_period=0, moe_layers=0).start()
    try:
        yield server.url
    finally:
        server.stop()


def _send(url: str, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> httpx.Response:
    return httpx.request(method, url + path, json=body, timeout=timeout)


def _sse(text: str) -> list[Any]:
    events = [e for e in text.split("\n\n") if e.strip()]
    assert events[-1].strip() == "data: [DONE]", text[-300:]
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


@pytest.mark.parametrize("name", NAMES)
def test_mock_answers_like_the_real_server(real_vllm_url: str, real_vllm_model: str, mock_url: str, name: str) -> None:
    method, path, body = _requests(real_vllm_model)[name]
    real = _send(real_vllm_url, method, path, body, timeout=120.0)  # a cold engine's first request: about 15 s
    mock = _send(mock_url, method, path, body, timeout=15.0)
    context = (
        f"{method} {path} {json.dumps(body)}\n"
        f"real {real.status_code}: {real.text[:800]}\nmock {mock.status_code}: {mock.text[:800]}"
    )
    assert mock.status_code == real.status_code, context
    if not real.content:
        assert mock.content == b"", context
        return
    if real.headers.get("content-type", "").startswith("text/event-stream"):
        assert mock.headers.get("content-type", "").startswith("text/event-stream"), context
        real_chunks, mock_chunks = _sse(real.text), _sse(mock.text)
        assert [shape(c) for c in mock_chunks] == [shape(c) for c in real_chunks], context
        return
    expected, actual = real.json(), mock.json()
    assert shape(actual) == shape(expected), context
    if real.status_code != 200:
        assert actual == expected, context  # type, param, code and the message
        return
    if name == "version":
        assert actual == expected, context
    if "usage" in expected:
        choice = expected["choices"][0]
        # The mock never samples an end-of-sequence id; a real early stop would make the lengths incomparable.
        assert choice["finish_reason"] == "length", context
        assert choice["token_ids"][-1] not in EOS_IDS, context
        assert actual["usage"] == expected["usage"], context
        assert actual["choices"][0]["finish_reason"] == "length", context
