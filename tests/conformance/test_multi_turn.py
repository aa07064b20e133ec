"""Multi-turn MoE rollouts the way RL stacks run them, on both transports, for every family with a mock folder.

Turn 1 renders messages with the family's native renderer and generates; turn 2 extends the token history with
``bridge_to_next_turn`` (a tool result or a user follow-up) and asks for routing from
``len(previous prompt) + len(previous completion) - 1``. The routing of turn 1 followed by that of turn 2 must
equal the routing of one request over the whole final sequence, turn 2's prompt must start with turn 1's prompt +
completion, and every turn must be identical on vLLM and on Dynamo (routing ``full`` and ``trimmed``).

The mocks run with the family's real tokenizer (``--tokenizer``), so ids, EOS and vocabulary checks are the
family's (``tests/helpers/family_cases.py`` lists the families and their folders); the token-level variant
(``run_multi_turn``) covers the tiny built-in tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from renderers.client import EngineClient, GenerateResult, generate
from renderers.families.qwen3 import Qwen3Renderer
from renderers.protocol import Renderer
from renderers.testing.equivalence import Outcome, assert_equivalent, routing_stitch_checks, run_multi_turn
from renderers.testing.strategies import Case, MoeSettings, cases
from renderers.types import Message
from tests.helpers.conversations import plain_text
from tests.helpers.family_cases import FAMILY_CASES
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, qwen3_tokenizer_dir

from .conftest import EOS_ID, MODEL, VOCAB_SIZE, Servers, run

MOE = MoeSettings(2, 4, 128)
QWEN3_MAX_LEN = 8192
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TARGETS = [("vllm", "prime-rl"), ("dynamo", "full"), ("dynamo", "trimmed"), ("vllm", "vllm-0.32")]


ROLLOUT_FAMILIES = sorted(name for name, case in FAMILY_CASES.items() if case.folder is not None)


@pytest.fixture(scope="module")
def renderer() -> Qwen3Renderer:
    return Qwen3Renderer(qwen3_tokenizer())


@pytest.fixture
def qwen_servers(mock_server_factory: Any) -> Servers:
    return Servers(mock_server_factory, tokenizer=qwen3_tokenizer_dir(), max_model_len=QWEN3_MAX_LEN)


@pytest.fixture(scope="module", params=ROLLOUT_FAMILIES)
def family(request: pytest.FixtureRequest) -> tuple[Renderer, Path]:
    case = FAMILY_CASES[request.param]
    assert case.folder is not None
    return case.ours(case.tokenizer()), case.folder()


@pytest.fixture
def family_servers(mock_server_factory: Any, family: tuple[Renderer, Path]) -> Servers:
    return Servers(mock_server_factory, tokenizer=family[1], max_model_len=QWEN3_MAX_LEN)


def _ok(outcome: Outcome) -> GenerateResult:
    assert outcome.result is not None, outcome.describe()
    return outcome.result


async def _rollout(
    servers: Servers, renderer: Renderer, kind: str, variant: str, messages: list[Message],
    follow_up: list[Message], sp: dict[str, Any],
) -> tuple[list[GenerateResult], GenerateResult] | None:  # fmt: skip
    async with EngineClient(servers.get(kind, variant, MOE).url) as client:
        common: dict[str, Any] = {"client": client, "renderer": renderer, "model": MODEL, "transport": kind}
        turn1 = await generate(messages=messages, sampling_params=sp, **common)
        try:
            bridged = renderer.bridge_to_next_turn(turn1["prompt_ids"], turn1["completion_ids"], follow_up)
        except ValueError:  # a follow-up the family's template refuses (MiniMax: a tool result after no call)
            return None
        if bridged is None:
            return None
        start = len(turn1["prompt_ids"]) + len(turn1["completion_ids"]) - 1
        turn2 = await generate(messages=[], prompt_ids=bridged.token_ids, prompt_attribution=bridged,
                               sampling_params={**sp, "routed_experts_prompt_start": start}, **common)  # fmt: skip
        final = [*turn2["prompt_ids"], *turn2["completion_ids"]]
        whole = await generate(messages=[], prompt_ids=final[:-1], sampling_params={"max_tokens": 1}, **common)
        return [turn1, turn2], whole


follow_ups = st.one_of(
    st.builds(lambda t: [{"role": "tool", "content": t}], plain_text),
    st.builds(lambda t: [{"role": "user", "content": t}], plain_text),
    st.builds(lambda a, b: [{"role": "tool", "content": a}, {"role": "user", "content": b}], plain_text, plain_text),
)
turn_params = st.fixed_dictionaries(
    {"max_tokens": st.integers(1, 48)},
    optional={"temperature": st.sampled_from([0, 0.7, 1.0]), "seed": st.integers(0, 2**31 - 1),
              "ignore_eos": st.booleans()},
)  # fmt: skip


@fixture_ok
@given(
    system=st.none() | plain_text,
    user=plain_text,
    follow_up=follow_ups,
    sp=turn_params,
)
def test_two_turn_routing_stitches_on_every_transport(
    family_servers: Servers,
    family: tuple[Renderer, Path],
    system: str | None,
    user: str,
    follow_up: list[Message],
    sp: dict[str, Any],
) -> None:
    renderer = family[0]
    messages: list[Message] = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": user})
    rollouts = {}
    for kind, variant in TARGETS:
        got = run(_rollout(family_servers, renderer, kind, variant, messages, follow_up, sp))
        assume(got is not None)  # bridge refused (the template would re-render differently): not this property
        assert got is not None
        turns, whole = got
        note(f"{kind}/{variant}: turn 1 {len(turns[0]['completion_ids'])} tokens ({turns[0]['finish_reason']}), "
             f"turn 2 {len(turns[1]['completion_ids'])} tokens")  # fmt: skip
        failed = [c for c in routing_stitch_checks(turns, whole) if not c.ok]
        assert not failed, f"{kind}/{variant}: {failed}"
        # The bridge keeps turn 1 verbatim, but for its last token, which a family may replace by the token its
        # template closes the turn with (gpt-oss: <|return|> becomes <|end|>); routing rows never cover that token.
        p1, c1 = turns[0]["prompt_ids"], turns[0]["completion_ids"]
        assert turns[1]["prompt_ids"][: len(p1) + len(c1) - 1] == [*p1, *c1[:-1]]
        rollouts[(kind, variant)] = turns
    reference = rollouts[TARGETS[0]]
    for target, turns in rollouts.items():
        for i, (a, b) in enumerate(zip(reference, turns, strict=True)):
            assert_equivalent(
                Outcome("vllm", a, None, 0.0), Outcome(target[0], b, None, 0.0), f"turn {i + 1} on {target}"
            )


def test_qwen3_tool_follow_up_example(qwen_servers: Servers, renderer: Qwen3Renderer) -> None:
    """A fixed rollout: greedy turn 1 that ends on <|im_end|>, then a tool result."""
    messages: list[Message] = [{"role": "user", "content": "What is the weather in Paris?"}]
    follow_up: list[Message] = [{"role": "tool", "content": '{"temp_c": 21}'}]
    for kind, variant in TARGETS:
        got = run(
            _rollout(qwen_servers, renderer, kind, variant, messages, follow_up, {"max_tokens": 300, "temperature": 0})
        )
        assert got is not None
        turns, whole = got
        assert turns[0]["finish_reason"] == "stop"
        assert turns[0]["completion_ids"][-1] == renderer.im_end_id
        assert all(c.ok for c in routing_stitch_checks(turns, whole))


@fixture_ok
@given(first=cases(vocab_size=VOCAB_SIZE, max_prompt_len=1024, max_tokens=32, eos_id=EOS_ID),
       follow_up=st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=16))  # fmt: skip
def test_token_level_two_turns_stitch_and_agree(servers: Servers, first: Case, follow_up: list[int]) -> None:
    """The package's renderer-free variant (what ``renderers-conformance`` runs) on every transport."""
    per_target = []
    for kind, variant in TARGETS:

        async def go(kind: str = kind, variant: str = variant) -> tuple[list[Outcome], Outcome | None]:
            async with EngineClient(servers.get(kind, variant, MOE).url) as client:
                return await run_multi_turn(client, transport=kind, model=MODEL, first=first, follow_up=follow_up)

        turns, whole = run(go())
        assume(whole is not None and whole.result is not None)  # an overlong turn: covered by test_equivalence
        assert whole is not None
        assert whole.result is not None
        results = [_ok(t) for t in turns]
        failed = [c for c in routing_stitch_checks(results, whole.result) if not c.ok]
        assert not failed, f"{kind}/{variant}: {failed}"
        per_target.append(turns)
    for turns in per_target[1:]:
        for a, b in zip(per_target[0], turns, strict=True):
            assert_equivalent(a, b)
