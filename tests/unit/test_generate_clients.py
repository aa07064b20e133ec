"""generate() with renderer pools (worker threads) and an openai.AsyncOpenAI client."""

from __future__ import annotations

import threading

import httpx
import pytest

from renderers.client import generate
from renderers.client._http import as_http_client
from tests.helpers.fake_renderer import FakePool, FakeRenderer
from tests.helpers.scripted_engine import (
    DYN_URL,
    MESSAGES,
    VLLM_URL,
    ScriptedEngine,
    dynamo_body,
    run,
    vllm_body,
)


async def test_pool_renders_and_parses_in_worker_threads() -> None:
    pool = FakePool()
    await run(ScriptedEngine(vllm_body()), pool)
    assert pool.threads
    assert all(name != threading.main_thread().name for name in pool.threads)


async def test_plain_renderer_runs_inline() -> None:
    renderer = FakeRenderer()
    await run(ScriptedEngine(vllm_body()), renderer)
    assert set(renderer.threads) == {threading.current_thread().name}


async def test_openai_client_is_reused() -> None:
    openai = pytest.importorskip("openai")
    engine = ScriptedEngine(vllm_body(), dynamo_body([7, 8], [-0.1, -0.2]))
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(engine.handler))
    client = openai.AsyncOpenAI(base_url="http://engine:8000/v1", api_key="sk-test", http_client=http_client)
    out = await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m")
    assert out["completion_ids"] == [7, 8]
    req = engine.requests[-1]
    assert str(req.url) == VLLM_URL
    assert req.headers["authorization"] == "Bearer sk-test"
    await generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="m", transport="dynamo")
    assert str(engine.requests[-1].url) == DYN_URL
    adapter = as_http_client(client)
    assert adapter is as_http_client(client)  # one adapter (and one ServerInfo) for the client's lifetime
    assert adapter.server_info.context_lens == {"m": None}
    assert engine.model_gets == 1
    await client.close()
