"""``ScriptedEngine``: a scripted inference server behind ``httpx.MockTransport`` for ``generate()`` tests, and the
response bodies it serves (vLLM generate, Dynamo chat + nvext, routed-experts payloads)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pybase64

from renderers.client import GenerateResult, generate
from renderers.types import Message
from tests.helpers.fake_renderer import FakeRenderer

BASE = "http://engine:8000/v1"
ROOT = "http://engine:8000"
VLLM_URL = "http://engine:8000/inference/v1/generate"
DYN_URL = "http://engine:8000/v1/chat/completions"
MESSAGES: list[Message] = [{"role": "user", "content": "hi"}]
TOOLS = [{"name": "echo", "description": "echo", "parameters": {"type": "object"}}]


def b64(data: bytes) -> str:
    return pybase64.b64encode(data).decode()


def routed(rows: int, *, start: int = 0, dtype: str = "uint8", layers: int = 1, top_k: int = 1) -> dict[str, Any]:
    """A prime-rl routed-experts object whose values are the sequence positions' 1-based counters."""
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
    """A vLLM generate response; ``shape="old"`` writes the older ``token: "token_id:N"`` logprob entries."""
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
    """A Dynamo chat completion with ``nvext.engine_data`` (each part only when given)."""
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


class ScriptedEngine:
    """A scripted engine behind ``httpx.MockTransport``; records every request.

    Each POST gets the next scripted item (the last one repeats): a JSON-able body (sent with status 200), an
    ``httpx.Response``, or an exception to raise. ``GET /v1/models`` answers ``models`` (404 when ``None``).
    """

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
        """The last request's JSON body."""
        body: dict[str, Any] = orjson.loads(self.requests[-1].content)
        return body

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


async def run(
    engine: ScriptedEngine,
    renderer: Any = None,
    *,
    base_url: str = BASE,
    client: httpx.AsyncClient | None = None,
    **kwargs: Any,
) -> GenerateResult:
    """One ``generate()`` against ``engine``: through ``client`` when given, else a new client (which knows nothing
    about the server yet: it asks ``/v1/models`` again)."""
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("model", "test-model")
    renderer = renderer or FakeRenderer()
    if client is not None:
        return await generate(client=client, renderer=renderer, **kwargs)
    async with engine.client(base_url) as fresh:
        return await generate(client=fresh, renderer=renderer, **kwargs)
