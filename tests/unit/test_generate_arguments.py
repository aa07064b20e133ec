"""generate()'s argument checks: a bad argument is a ValueError before any work."""

from __future__ import annotations

from typing import Any

import pytest

from renderers.client import generate
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
