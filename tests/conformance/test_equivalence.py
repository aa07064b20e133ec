"""The promise, checked over real HTTP against both mocks: whichever transport a rollout uses, ``generate()``
returns the same completion ids, exact logprobs, finish reason and routed experts, or the same error.

Each example runs one case on the mock vLLM (``prime-rl`` or ``vllm-0.32`` wire) and on the mock Dynamo with
routing ``full`` (1.6.1: the client trims) and ``trimmed`` (newer: the server trims).
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from renderers.client import EngineClient
from renderers.errors import EngineHTTPError
from renderers.testing.equivalence import Outcome, assert_equivalent, run_case
from renderers.testing.strategies import Case, MoeSettings, cases, moe_settings

from .conftest import EOS_ID, MAX_MODEL_LEN, MODEL, VOCAB_SIZE, Servers, run

DENSE = MoeSettings(0, 8, 128)
UINT8 = MoeSettings(2, 2, 64)
UINT16 = MoeSettings(3, 4, 300)

# Prompts a little longer than the context are drawn too: both transports must then raise the same error.
case_st = cases(vocab_size=VOCAB_SIZE, max_prompt_len=MAX_MODEL_LEN + 8, max_tokens=64, eos_id=EOS_ID)


def ids(n: int) -> list[int]:
    """``n`` prompt ids, all inside the vocabulary."""
    return [i % VOCAB_SIZE for i in range(n)]


GREEDY_NVEXT = Case(list(range(40)), {"max_tokens": 8, "temperature": 0, "nvext": {"greed_sampling": True},
                                      "routed_experts_prompt_start": 39}, [EOS_ID])  # fmt: skip
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


async def _outcomes(servers: Servers, case: Case, moe: MoeSettings, profile: str) -> list[Outcome]:
    out = []
    for kind, variant in (("vllm", profile), ("dynamo", "full"), ("dynamo", "trimmed")):
        async with EngineClient(servers.get(kind, variant, moe).url) as client:
            out.append(await run_case(client, transport=kind, model=MODEL, case=case))
    return out


def check(servers: Servers, case: Case, moe: MoeSettings, profile: str) -> list[Outcome]:
    vllm, full, trimmed = run(_outcomes(servers, case, moe, profile))
    assert_equivalent(vllm, full, "vLLM vs Dynamo with full routing")
    assert_equivalent(vllm, trimmed, "vLLM vs Dynamo with trimmed routing")
    if vllm.result is not None:
        routed = vllm.result["routed_experts"]
        assert (routed is None) == (moe.layers == 0)
        if routed is not None:
            start = case.prompt_start or 0
            assert routed.start == start
            assert routed.shape == (len(case.prompt_ids) + len(vllm.result["completion_ids"]) - 1 - start,
                                    moe.layers, moe.top_k)  # fmt: skip
            assert routed.dtype == ("uint8" if moe.num_experts <= 256 else "uint16")
    return [vllm, full, trimmed]


# Explicit examples: edge cases that must always run (found by hand or by earlier runs of this suite).
@example(case=Case([0], {"max_tokens": 1}), moe=UINT8, profile="prime-rl")  # shortest prompt, one token
@example(case=Case([VOCAB_SIZE - 1] * 3, {"max_tokens": 1, "routed_experts_prompt_start": 2}), moe=UINT16,
         profile="vllm-0.32")  # fmt: skip  # start at the last prompt token; npy form, uint16
@example(case=GREEDY_NVEXT, moe=UINT8, profile="prime-rl")  # greedy on both, Dynamo told so through nvext
@example(case=Case(ids(MAX_MODEL_LEN), {"max_tokens": 4}), moe=DENSE, profile="prime-rl")  # no room: 400
@example(case=Case(ids(MAX_MODEL_LEN + 1), {"max_tokens": 4}), moe=DENSE, profile="prime-rl")  # pre-flight
@example(case=Case(ids(MAX_MODEL_LEN - 2), {"max_tokens": 64, "ignore_eos": True}), moe=UINT8,
         profile="vllm-0.32")  # fmt: skip  # clamped to the context: finish "length"
@example(case=Case([1, VOCAB_SIZE, 2], {"max_tokens": 4}), moe=UINT8, profile="prime-rl")  # out of vocabulary
@fixture_ok
@given(case=case_st, moe=moe_settings(), profile=st.sampled_from(["prime-rl", "vllm-0.32"]))
def test_same_result_on_both_transports(servers: Servers, case: Case, moe: MoeSettings, profile: str) -> None:
    vllm, _, _ = check(servers, case, moe, profile)
    note(f"{moe} {profile}: {vllm.describe()}")
    event(f"outcome: {vllm.kind}")
    if vllm.result is not None:
        event(f"finish_reason: {vllm.result['finish_reason']}")


def test_explicit_edge_outcomes(servers: Servers) -> None:
    """The explicit examples above do what they are meant to (so they keep testing what they claim)."""
    full = check(servers, Case(ids(MAX_MODEL_LEN), {"max_tokens": 4}), DENSE, "prime-rl")
    assert {o.kind for o in full} == {"OverlongPromptError"}
    over = check(servers, Case(ids(MAX_MODEL_LEN + 1), {"max_tokens": 4}), DENSE, "prime-rl")
    assert {o.kind for o in over} == {"OverlongPromptError"}
    clamp = check(servers, Case(ids(MAX_MODEL_LEN - 2), {"max_tokens": 64, "ignore_eos": True}), UINT8,
                  "vllm-0.32")  # fmt: skip
    assert clamp[0].result is not None
    assert clamp[0].result["finish_reason"] == "length"
    assert len(clamp[0].result["completion_ids"]) == 2
    oov = check(servers, Case([1, VOCAB_SIZE, 2], {"max_tokens": 4}), UINT8, "prime-rl")
    assert {o.kind for o in oov} == {"EngineHTTPError"}
    assert {o.error.status for o in oov if isinstance(o.error, EngineHTTPError)} == {400}
    stop = check(servers, Case([5, 6, 7], {"max_tokens": 64, "temperature": 0}, [EOS_ID]), UINT8, "prime-rl")
    assert stop[0].result is not None
    assert stop[0].result["completion_logprobs"]
    assert all(lp <= 0 for lp in stop[0].result["completion_logprobs"])
