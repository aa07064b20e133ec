"""The transport-equivalence suite on the real Dynamo 1.6.1 frontend, with the mock engine as its two workers.

One side is the pure-Python mock vLLM; the other is real Dynamo code (frontend, request plane, our
``renderers-mock dynamo-worker`` processes), reached over both transports: ``dynamo`` (``/v1/chat/completions``
with ``nvext``) and ``vllm`` (Dynamo's ``/inference/v1/generate``). Every generated case must give the same
completion ids, exact logprobs, finish reason and routed experts (or the same error) on all three; multi-turn
routing must stitch; the engine-side faults must give the same typed errors. The worker engine is the mocks' own,
so any difference is the real frontend's doing (or the client's reading of it).

Prompts stay well inside the context: the real frontend sends an overlong prompt to the worker, whose refusal
becomes a 500 instead of vLLM's 400 (covered by the mock suites, not a transport property).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from mockservers.dynamo_stack import DynamoStack
from mockservers.server import MockServer
from renderers.client import EngineClient
from renderers.errors import (
    EngineHTTPError,
    LogprobMismatchError,
    MissingCompletionIdsError,
    PartialCompletionError,
    RenderersError,
    RoutedExpertsError,
)
from renderers.testing.equivalence import Outcome, assert_equivalent, routing_stitch_checks, run_case, run_multi_turn
from renderers.testing.strategies import Case, cases

from ..conformance.conftest import EOS_ID, MODEL, VOCAB_SIZE, run

pytestmark = pytest.mark.real_dynamo

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _portable(case: Case) -> bool:
    """Leave out the two requests real 1.6.1 forwards differently from what vLLM does with them (each pinned by a
    test below; the pure-Python mock Dynamo does not reproduce them, see docs/mock-servers.md):
    ``nvext.greed_sampling`` (the frontend drops ``temperature`` and ``top_p``: not greedy) and ``ignore_eos`` with
    stop ids (the frontend drops ``stop_token_ids``)."""
    nvext = case.sampling_params.get("nvext")
    if isinstance(nvext, dict) and nvext.get("greed_sampling"):
        return False
    return not (case.sampling_params.get("ignore_eos") and case.stop_token_ids)


case_st = cases(vocab_size=VOCAB_SIZE, max_prompt_len=1024, max_tokens=48, eos_id=EOS_ID).filter(_portable)


async def _three(stack: DynamoStack, vllm: MockServer, case: Case, sp_extra: dict[str, object] | None = None,
                 headers: dict[str, str] | None = None) -> list[Outcome]:  # fmt: skip
    out = []
    for url, transport in ((vllm.url, "vllm"), (stack.url, "dynamo"), (stack.url, "vllm")):
        async with EngineClient(url) as client:
            out.append(await run_case(client, transport=transport, model=MODEL, case=case, timeout=30.0))
    return out


@example(case=Case([0], {"max_tokens": 1}))
@example(case=Case([VOCAB_SIZE - 1] * 3, {"max_tokens": 1, "routed_experts_prompt_start": 2}))
@example(case=Case(list(range(40)), {"max_tokens": 8, "temperature": 0, "routed_experts_prompt_start": 39}, [EOS_ID]))
@example(case=Case([5, 6, 7], {"max_tokens": 48, "temperature": 0}, [EOS_ID]))
@settings(suppress_health_check=HEALTH, deadline=None, max_examples=60)
@given(case=case_st)
def test_mock_vllm_equals_real_frontend_on_both_transports(
    engine_stack: DynamoStack, mock_vllm_moe: MockServer, case: Case
) -> None:
    reference, dynamo, generate = run(_three(engine_stack, mock_vllm_moe, case))
    note(reference.describe())
    assert_equivalent(reference, dynamo, "mock vLLM vs real Dynamo chat/nvext")
    assert_equivalent(reference, generate, "mock vLLM vs real Dynamo /inference/v1/generate")
    assert reference.result is not None, reference.describe()  # every drawn case fits: success everywhere


def test_out_of_vocabulary_prompt_is_an_http_error_everywhere(engine_stack: DynamoStack,
                                                               mock_vllm_moe: MockServer) -> None:  # fmt: skip
    outcomes = run(_three(engine_stack, mock_vllm_moe, Case([1, VOCAB_SIZE, 2], {"max_tokens": 4})))
    for outcome in outcomes:
        assert isinstance(outcome.error, EngineHTTPError), outcome.describe()
    # vLLM and Dynamo's chat route validate the ids; on /inference/v1/generate the frontend passes them to the
    # worker, and Dynamo turns the worker's refusal into a 400 too.
    assert [o.error.status for o in outcomes if isinstance(o.error, EngineHTTPError)] == [400, 400, 400]


@settings(suppress_health_check=HEALTH, deadline=None, max_examples=15)
@example(first=Case([0], {"max_tokens": 1, "top_p": 1 / 3}), follow_up=[0])  # top_p rounded to f32 by the frontend
@given(first=cases(vocab_size=VOCAB_SIZE, max_prompt_len=512, max_tokens=32, eos_id=EOS_ID).filter(_portable),
       follow_up=st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=16))  # fmt: skip
def test_multi_turn_routing_stitches_through_real_dynamo(
    engine_stack: DynamoStack, mock_vllm_moe: MockServer, first: Case, follow_up: list[int]
) -> None:
    per_target: list[list[Outcome]] = []
    for url, transport in ((mock_vllm_moe.url, "vllm"), (engine_stack.url, "dynamo"), (engine_stack.url, "vllm")):

        async def go(url: str = url, transport: str = transport) -> tuple[list[Outcome], Outcome | None]:
            async with EngineClient(url) as client:
                return await run_multi_turn(client, transport=transport, model=MODEL, first=first,
                                            follow_up=follow_up, timeout=30.0)  # fmt: skip

        turns, whole = run(go())
        assert whole is not None, [t.describe() for t in turns]
        assert whole.result is not None, whole.describe()
        results = []
        for t in turns:
            assert t.result is not None, t.describe()
            results.append(t.result)
        failed = [c for c in routing_stitch_checks(results, whole.result) if not c.ok]
        assert not failed, f"{transport} at {url}: {failed}"
        per_target.append(turns)
    for turns in per_target[1:]:
        for a, b in zip(per_target[0], turns, strict=True):
            assert_equivalent(a, b)


# ---- engine-side faults: the worker misbehaves, the real frontend relays it, the client must say so ----------
FAULT_CASE = Case(list(range(100, 140)), {"max_tokens": 12, "seed": 7, "routed_experts_prompt_start": 20}, [EOS_ID])


async def _faulty(stack: DynamoStack, transport: str, fault: str) -> Outcome:
    sp = dict(FAULT_CASE.sampling_params)
    if transport == "dynamo":
        sp["nvext"] = {"annotations": [f"mock-fault:{fault}"]}
    else:
        sp["mock_fault"] = fault
    case = Case(FAULT_CASE.prompt_ids, sp, FAULT_CASE.stop_token_ids)
    async with EngineClient(stack.url) as client:
        return await run_case(client, transport=transport, model=MODEL, case=case, timeout=30.0)


CHAT_FAULTS: list[tuple[str, type[RenderersError]]] = [
    ("completion_ids=missing", MissingCompletionIdsError),
    ("logprobs=mismatch", LogprobMismatchError),
    # The frontend counts the streamed tokens in usage and the echo; an emptied engine_data is not a migration.
    ("completion_ids=empty", PartialCompletionError),
]


@pytest.mark.parametrize(("fault", "error"), CHAT_FAULTS, ids=[f for f, _ in CHAT_FAULTS])
def test_engine_faults_on_the_chat_route_are_typed_errors(
    engine_stack: DynamoStack, fault: str, error: type[RenderersError]
) -> None:
    outcome = run(_faulty(engine_stack, "dynamo", fault))
    assert isinstance(outcome.error, error), outcome.describe()


def test_pre_trimmed_routing_labelled_start_0_is_refused(engine_stack: DynamoStack) -> None:
    """Rows trimmed at the prompt start but labelled ``start: 0``: the row count cannot line up."""
    outcome = run(_faulty(engine_stack, "vllm", "routing=pre-trimmed"))
    assert isinstance(outcome.error, RoutedExpertsError), outcome.describe()


def test_full_routing_from_the_worker_is_trimmed_by_the_client(
    engine_stack: DynamoStack, mock_vllm_moe: MockServer
) -> None:
    """A worker that ignores ``routed_experts_prompt_start`` (full table, start 0): the client trims it."""
    faulty = run(_faulty(engine_stack, "vllm", "routing=full"))
    reference = run(_three(engine_stack, mock_vllm_moe, FAULT_CASE))[0]
    assert_equivalent(reference, faulty)
    assert faulty.result is not None
    routed = faulty.result["routed_experts"]
    assert routed is not None
    assert routed.start == 20


# ---- what real 1.6.1 does differently from vLLM (canaries: they fail when a Dynamo upgrade changes it) ---------
def test_real_frontend_drops_stop_ids_when_ignore_eos(engine_stack: DynamoStack, mock_vllm_moe: MockServer) -> None:
    """``ignore_eos: true`` makes the 1.6.1 frontend send the worker ``stop_token_ids: null``: a stop id vLLM
    honours is not honoured through Dynamo's chat route (the generate route passes vLLM's body on, and keeps it)."""
    probe = Case([5, 6, 7], {"max_tokens": 40, "temperature": 0, "ignore_eos": True})
    free = run(_three(engine_stack, mock_vllm_moe, probe))[0]
    assert free.result is not None
    stop_id = free.result["completion_ids"][5]
    case = Case(probe.prompt_ids, probe.sampling_params, [stop_id])
    reference, dynamo, generate = run(_three(engine_stack, mock_vllm_moe, case))
    assert reference.result is not None
    assert dynamo.result is not None
    assert reference.result["finish_reason"] == "stop"
    assert len(reference.result["completion_ids"]) <= 6
    assert_equivalent(reference, generate)
    assert dynamo.result["finish_reason"] == "length"
    assert len(dynamo.result["completion_ids"]) == 40


def test_real_frontend_greed_sampling_is_not_greedy(engine_stack: DynamoStack, mock_vllm_moe: MockServer) -> None:
    """``nvext.greed_sampling: true`` with ``temperature: 0``: the 1.6.1 frontend sends the worker
    ``temperature: null`` (its default sampling), so the answer is the seeded sample, not the greedy one."""
    greedy = Case(list(range(40)), {"max_tokens": 8, "temperature": 0, "seed": 3})
    with_flag = Case(greedy.prompt_ids, {**greedy.sampling_params, "nvext": {"greed_sampling": True}})
    sampled = Case(greedy.prompt_ids, {"max_tokens": 8, "seed": 3})
    reference_greedy, _, _ = run(_three(engine_stack, mock_vllm_moe, greedy))
    reference_sampled, _, _ = run(_three(engine_stack, mock_vllm_moe, sampled))

    async def flagged() -> Outcome:
        async with EngineClient(engine_stack.url) as client:
            return await run_case(client, transport="dynamo", model=MODEL, case=with_flag, timeout=30.0)

    got = run(flagged())
    assert_equivalent(reference_sampled, got)
    assert reference_greedy.result is not None
    assert got.result is not None
    assert got.result["completion_ids"] != reference_greedy.result["completion_ids"]
