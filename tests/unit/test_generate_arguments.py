"""generate()'s arguments: checked once into a frozen ``GenerateCall`` (a bad one is a ValueError naming it, before
any work), with cache_salt / priority / routed_experts_prompt_start settled out of sampling_params."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from renderers.client import generate
from renderers.client._call import SETTLED_KEYS, GenerateCall
from tests.helpers.fake_renderer import FakeRenderer
from tests.helpers.scripted_engine import (
    MESSAGES,
    TOOLS,
    ScriptedEngine,
    run,
    vllm_body,
)


async def test_unknown_transport_raises_before_rendering() -> None:
    engine = ScriptedEngine(vllm_body())
    renderer = FakeRenderer()
    with pytest.raises(ValueError, match="Unknown renderer transport"):
        await run(engine, renderer, transport="grpc")
    assert renderer.render_calls == []
    assert engine.requests == []
    assert engine.model_gets == 0


async def test_tools_on_renderer_without_tool_support() -> None:
    with pytest.raises(ValueError, match="does not support tools"):
        await run(ScriptedEngine(vllm_body()), FakeRenderer(supports_tools=False), tools=TOOLS)


@pytest.mark.parametrize(
    "kwargs",
    [{"priority": "high"}, {"priority": True}, {"sampling_params": {"routed_experts_prompt_start": -1}},
     {"timeout": 0}, {"cache_salt": 3}, {"sampling_params": [1]}, {"max_prompt_len": 0},
     {"priority": 2**31}, {"priority": -(2**31)}, {"sampling_params": {"priority": 2**40}}],
)  # fmt: skip
async def test_bad_arguments_are_value_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        await run(ScriptedEngine(vllm_body()), **kwargs)


async def test_unsupported_client_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="client must be"):
        await generate(client=object(), renderer=FakeRenderer(), messages=MESSAGES, model="m")


# ------------------------------------------------------------------------------------------------ the settled call


@pytest.mark.parametrize(
    ("kwargs", "salt", "priority", "start"),
    [
        ({}, None, None, None),
        ({"sampling_params": {"cache_salt": "s", "priority": 3, "routed_experts_prompt_start": 5}}, "s", 3, 5),
        ({"cache_salt": "kw", "priority": -4, "sampling_params": {"cache_salt": "s", "priority": 3}}, "kw", -4, None),
        ({"sampling_params": {"cache_salt": None, "priority": None, "routed_experts_prompt_start": None}}, None, None,
         None),
    ],
)  # fmt: skip
def test_the_call_settles_salt_priority_and_prompt_start_once(
    kwargs: dict[str, Any], salt: str | None, priority: int | None, start: int | None
) -> None:
    caller_sp = dict(kwargs.get("sampling_params", {}))
    call = GenerateCall.from_arguments(model="m", **kwargs)
    assert (call.cache_salt, call.priority, call.prompt_start) == (salt, priority, start)
    assert not SETTLED_KEYS & call.sampling_params.keys()
    assert kwargs.get("sampling_params", {}) == caller_sp  # the caller's mapping is not changed
    request = call.wire_request([1, 2], None, [99])
    assert (request.cache_salt, request.priority, request.prompt_start) == (salt, priority, start)
    assert request.sampling_params == {"stop_token_ids": [99], "logprobs": 1, "skip_special_tokens": False}


def test_the_call_is_frozen() -> None:
    call = GenerateCall.from_arguments(model="m", priority=1)
    with pytest.raises(FrozenInstanceError):
        call.priority = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"sampling_params": {"priority": "1"}}, "priority"), ({"cache_salt": 3}, "cache_salt"),
     ({"sampling_params": {"routed_experts_prompt_start": 1.5}}, "routed_experts_prompt_start"),
     ({"timeout": -1}, "timeout"), ({"max_prompt_len": True}, "max_prompt_len")],
)  # fmt: skip
def test_a_bad_argument_is_named_with_its_value(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        GenerateCall.from_arguments(model="m", **kwargs)
    value = next(iter(kwargs.values()))
    shown = next(iter(value.values())) if isinstance(value, dict) else value
    assert repr(shown) in str(info.value)


async def test_the_caller_sampling_params_are_not_changed() -> None:
    engine = ScriptedEngine(vllm_body())
    sp: dict[str, Any] = {"temperature": 0.5, "priority": 2, "routed_experts_prompt_start": 1}
    await run(engine, sampling_params=sp)
    assert sp == {"temperature": 0.5, "priority": 2, "routed_experts_prompt_start": 1}
    assert engine.body["priority"] == 2
    assert engine.body["sampling_params"]["routed_experts_prompt_start"] == 1
