"""What a client learns about its server (``ServerInfo``, held by the client): the context length asked once per
model, the pre-flight cap it gives, and an optional field the server rejected, left out from then on. Nothing is
shared between two clients."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from renderers.client import EngineClient, generate
from renderers.client._http import as_http_client
from renderers.client._transports.dynamo import PROMPT_START_FIELD
from renderers.errors import EngineHTTPError, OverlongPromptError
from tests.helpers.fake_renderer import FakeRenderer
from tests.helpers.scripted_engine import MESSAGES, ROOT, ScriptedEngine, dynamo_body, routed, run, vllm_body

# ------------------------------------------------------------------------------------------------ context length


async def test_explicit_cap_exceeded_raises_before_sending() -> None:
    engine = ScriptedEngine(vllm_body())
    with pytest.raises(OverlongPromptError) as info:
        await run(engine, FakeRenderer(prompt_ids=list(range(10))), max_prompt_len=4)
    assert info.value.prompt_len == 10
    assert info.value.max_prompt_len == 4
    assert engine.requests == []
    assert engine.model_gets == 0


async def test_prompt_at_cap_is_allowed() -> None:
    engine = ScriptedEngine(vllm_body())
    await run(engine, FakeRenderer(prompt_ids=[1, 2, 3, 4]), max_prompt_len=4)
    assert len(engine.requests) == 1


@pytest.mark.parametrize(
    ("card", "transport"),
    [({"id": "test-model", "max_model_len": 4}, "vllm"), ({"id": "test-model", "context_window": 4}, "dynamo")],
)
async def test_discovered_cap_from_models_endpoint(card: dict[str, Any], transport: str) -> None:
    engine = ScriptedEngine(vllm_body(), models={"object": "list", "data": [{"id": "other", "max_model_len": 1}, card]})
    async with engine.client() as client:
        for _ in range(2):
            with pytest.raises(OverlongPromptError) as info:
                await run(engine, FakeRenderer(prompt_ids=list(range(10))), client=client, transport=transport)
            assert info.value.max_prompt_len == 4
    assert engine.model_gets == 1
    assert engine.requests == []


async def test_discovery_failure_is_kept_and_request_still_sent() -> None:
    engine = ScriptedEngine(vllm_body())
    async with engine.client() as client:
        await run(engine, client=client)
        await run(engine, client=client)
        assert as_http_client(client).server_info.context_lens == {"test-model": None}
    assert engine.model_gets == 1
    assert len(engine.requests) == 2


async def test_each_model_is_asked_once() -> None:
    cards = {"data": [{"id": "a", "max_model_len": 10}, {"id": "b", "context_window": 20}]}
    engine = ScriptedEngine(vllm_body(), models=cards)
    async with engine.client() as client:
        for model in ("a", "b", "a", "b"):
            await run(engine, client=client, model=model)
        assert as_http_client(client).server_info.context_lens == {"a": 10, "b": 20}
    assert engine.model_gets == 2


async def test_concurrent_discovery_asks_once() -> None:
    engine = ScriptedEngine(vllm_body(), models={"data": [{"id": "test-model", "max_model_len": 100}]})
    async with engine.client() as client:
        await asyncio.gather(
            *(generate(client=client, renderer=FakeRenderer(), messages=MESSAGES, model="test-model") for _ in range(8))
        )
    assert engine.model_gets == 1
    assert len(engine.requests) == 8


async def test_two_clients_of_one_server_learn_separately() -> None:
    """Knowledge lives on the client object, not in the process: a second client asks again."""
    engine = ScriptedEngine(vllm_body(), models={"data": [{"id": "test-model", "max_model_len": 100}]})
    async with engine.client() as first, engine.client() as second:
        await run(engine, client=first)
        await run(engine, client=first)
        await run(engine, client=second)
        assert as_http_client(first).server_info is as_http_client(first).server_info
        assert as_http_client(first).server_info is not as_http_client(second).server_info
    assert engine.model_gets == 2


def test_engine_client_holds_its_server_info() -> None:
    client = EngineClient(f"{ROOT}/v1/")
    assert client.server_info.root_url == ROOT
    assert client.server_info.context_lens == {}
    assert client.server_info.accepts(PROMPT_START_FIELD)
    assert EngineClient(ROOT).server_info is not client.server_info


# ------------------------------------------------------------------------------------------------ rejected fields

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
    engine = ScriptedEngine(PROMPT_START_400, ok, ok)
    sp = {"routed_experts_prompt_start": 3}
    async with engine.client() as client:
        out = await run(engine, client=client, transport="dynamo", sampling_params=sp)
        bodies = engine.bodies()
        assert len(bodies) == 2
        assert bodies[0]["nvext"]["routed_experts_prompt_start"] == 3
        assert "routed_experts_prompt_start" not in bodies[1]["nvext"]
        re = out["routed_experts"]
        assert re is not None
        assert re.start == 3
        assert re.shape == (1, 1, 1)
        assert not as_http_client(client).server_info.accepts(PROMPT_START_FIELD)
        await run(engine, client=client, transport="dynamo", sampling_params=sp)
    assert len(engine.requests) == 3
    assert "routed_experts_prompt_start" not in engine.body["nvext"]


async def test_a_rejected_field_is_remembered_through_retries() -> None:
    """``retries=`` wraps the client; what the wrapper learns is the client's."""
    ok = dynamo_body([7, 8], [-0.1, -0.2], routed_experts=routed(4))
    engine = ScriptedEngine(PROMPT_START_400, ok, ok)
    sp = {"routed_experts_prompt_start": 3}
    async with engine.client() as client:
        await run(engine, client=client, transport="dynamo", sampling_params=sp, retries=2)
        assert not as_http_client(client).server_info.accepts(PROMPT_START_FIELD)
        await run(engine, client=client, transport="dynamo", sampling_params=sp)
    assert "routed_experts_prompt_start" not in engine.body["nvext"]
    assert len(engine.requests) == 3


async def test_dynamo_other_400_is_not_retried() -> None:
    err = httpx.Response(400, json={"message": "Validation: Unsupported parameter(s): `foo`", "type": "Bad Request",
                                    "code": 400})  # fmt: skip
    engine = ScriptedEngine(err)
    async with engine.client() as client:
        with pytest.raises(EngineHTTPError) as info:
            await run(engine, client=client, transport="dynamo", sampling_params={"routed_experts_prompt_start": 3})
        assert as_http_client(client).server_info.accepts(PROMPT_START_FIELD)
    assert len(engine.requests) == 1
    assert info.value.status == 400
    assert "Unsupported parameter" in info.value.message
    assert info.value.error_type == "Bad Request"


async def test_the_vllm_transport_never_resends() -> None:
    engine = ScriptedEngine(PROMPT_START_400)
    with pytest.raises(EngineHTTPError):
        await run(engine, sampling_params={"routed_experts_prompt_start": 3})
    assert len(engine.requests) == 1
