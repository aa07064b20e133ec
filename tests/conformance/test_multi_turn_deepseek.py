"""Multi-turn MoE rollouts with DeepSeek tokenizers, on both transports (the Qwen3 version is test_multi_turn.py).

The mocks run with the real DeepSeek V3.1 / R1 tokenizers (``--tokenizer``). Turn 1 renders with
``DeepSeekRenderer`` and generates; turn 2 extends the token history with ``bridge_to_next_turn`` (tool results or
a user follow-up) and asks for routing from ``len(prompt) + len(completion) - 1``. Turn 1's routing followed by
turn 2's must equal one request's routing over the whole final sequence, turn 2's prompt must start with turn 1's
prompt + completion (cut after ``<｜end▁of▁sentence｜>``), and every transport must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from renderers.families.deepseek import DeepSeekRenderer
from renderers.testing.equivalence import Outcome, assert_equivalent, routing_stitch_checks
from tests.helpers.conversations import plain_text
from tests.helpers.offline_tokenizers import otc_dir, otc_tokenizer

from .conftest import Servers, run
from .test_multi_turn import TARGETS, _rollout, fixture_ok, follow_ups, turn_params

MAX_LEN = 8192
FOLDERS = {"v3.1": "deepseek-v3.1", "r1": "deepseek-r1"}


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ds(variant: str, mock_server_factory: Any) -> tuple[DeepSeekRenderer, Servers]:
    folder = FOLDERS[variant]
    renderer = DeepSeekRenderer(otc_tokenizer(folder), variant="r1" if variant == "r1" else "v3.1")
    return renderer, Servers(mock_server_factory, tokenizer=otc_dir(folder), max_model_len=MAX_LEN)


@fixture_ok
@given(system=st.none() | plain_text, user=plain_text, follow_up=follow_ups, sp=turn_params)
def test_deepseek_two_turn_routing_stitches_on_every_transport(
    ds: tuple[DeepSeekRenderer, Servers],
    system: str | None,
    user: str,
    follow_up: list[dict[str, Any]],
    sp: dict[str, Any],
) -> None:
    renderer, servers = ds
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": user})
    rollouts = {}
    for kind, variant in TARGETS:
        got = run(_rollout(servers, renderer, kind, variant, messages, follow_up, sp))  # type: ignore[arg-type]
        assume(got is not None)  # bridge refused (the template would re-render differently): not this property
        assert got is not None
        turns, whole = got
        note(f"{kind}/{variant}: turn 1 {len(turns[0]['completion_ids'])} tokens ({turns[0]['finish_reason']})")
        failed = [c for c in routing_stitch_checks(turns, whole) if not c.ok]
        assert not failed, f"{kind}/{variant}: {failed}"
        p1, c1 = turns[0]["prompt_ids"], turns[0]["completion_ids"]
        kept = c1[: c1.index(renderer.eos_id) + 1] if renderer.eos_id in c1 else c1
        assert turns[1]["prompt_ids"][: len(p1) + len(kept)] == [*p1, *kept]
        rollouts[(kind, variant)] = turns
    reference = rollouts[TARGETS[0]]
    for target, turns in rollouts.items():
        for i, (a, b) in enumerate(zip(reference, turns, strict=True)):
            assert_equivalent(
                Outcome("vllm", a, None, 0.0), Outcome(target[0], b, None, 0.0), f"turn {i + 1} on {target}"
            )
