"""A worker dies mid-generation behind the real Dynamo 1.6.1 frontend: the client never returns a truncated answer.

Two mock-engine workers stream one token every ``PER_TOKEN_S``; requests are in flight when worker 0 is killed
(SIGKILL, like a crash). Without migration the frontend answers 503 for worker 0's requests. With
``DYN_MIGRATION_LIMIT`` the frontend finishes them on worker 1, and its answer mixes the two workers (``usage`` and
the chat echo count every token, ``nvext.engine_data`` only worker 1's part): the Dynamo transport must rebuild the
whole completion exactly (equal to the engine's answer, here the mock vLLM's) or raise ``PartialCompletionError``.
The engine is a function of the prefix, seed and position, so a migrated completion equals the unmigrated one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from mockservers.dynamo_stack import DynamoStack
from mockservers.server import MockServer
from renderers.client import EngineClient
from renderers.errors import EngineHTTPError
from renderers.testing.equivalence import Outcome, assert_equivalent, run_case
from renderers.testing.strategies import Case

from ..conformance.conftest import MODEL, run

pytestmark = pytest.mark.real_dynamo

PER_TOKEN_S = 0.02
N_TOKENS = 50
MOE_ARGS = ["--moe-layers", "2", "--moe-top-k", "2", "--num-experts", "64"]
StackFactory = Callable[..., DynamoStack]


def _cases(n: int) -> list[Case]:
    return [Case([5 + i, 6, 7, 8, 9], {"max_tokens": N_TOKENS, "ignore_eos": True, "seed": i}) for i in range(n)]


async def _kill_mid_run(stack: DynamoStack, cases: list[Case], transport: str) -> list[Outcome]:
    async with EngineClient(stack.url) as client:
        tasks = [
            asyncio.create_task(run_case(client, transport=transport, model=MODEL, case=c, timeout=60.0)) for c in cases
        ]
        await asyncio.sleep(PER_TOKEN_S * N_TOKENS / 3)  # about a third of the tokens streamed
        await asyncio.to_thread(stack.kill_worker, 0)
        return list(await asyncio.gather(*tasks))


async def _reference(cases: list[Case]) -> list[Outcome]:
    with MockServer("vllm", moe_layers=2, moe_top_k=2, num_experts=64, max_model_len=4096) as server:
        async with EngineClient(server.url) as client:
            return [await run_case(client, transport="vllm", model=MODEL, case=c) for c in cases]


def _stack(factory: StackFactory, migration_limit: int) -> DynamoStack:
    return factory(workers=2, worker_args=[*MOE_ARGS, "--per-token-s", str(PER_TOKEN_S)],
                   frontend_env={"DYN_MIGRATION_LIMIT": str(migration_limit)})  # fmt: skip


def test_kill_without_migration_gives_503_never_a_result(dynamo_stack_factory: StackFactory) -> None:
    stack = _stack(dynamo_stack_factory, 0)
    cases = _cases(8)
    outcomes = run(_kill_mid_run(stack, cases, "dynamo"))
    reference = run(_reference(cases))
    failed = [o for o in outcomes if o.error is not None]
    assert failed, "the kill hit no request in flight"
    for outcome in failed:
        assert isinstance(outcome.error, EngineHTTPError), outcome.describe()
        assert outcome.error.status == 503
    for outcome, ref in zip(outcomes, reference, strict=True):
        if outcome.result is not None:
            assert_equivalent(ref, outcome)


def test_kill_with_migration_chat_route_is_rebuilt_exactly(dynamo_stack_factory: StackFactory) -> None:
    """Every answer equals the engine's, whole: the migrated ones are rebuilt from the chat echo (or refused with
    ``PartialCompletionError``, which this rule never needs here: each migrated answer is explained in full)."""
    stack = _stack(dynamo_stack_factory, 3)
    cases = _cases(8)
    outcomes = run(_kill_mid_run(stack, cases, "dynamo"))
    reference = run(_reference(cases))
    for outcome, ref in zip(outcomes, reference, strict=True):
        assert_equivalent(ref, outcome, outcome.describe())
    frontend = next(p for p in stack.processes if p.name == "frontend")
    assert "recreating stream" in frontend.log_tail(10**7), "no request was migrated: the kill came too late"


def test_kill_with_migration_generate_route_fails_whole(dynamo_stack_factory: StackFactory) -> None:
    """1.6.1 does not migrate ``/inference/v1/generate`` requests even with ``DYN_MIGRATION_LIMIT`` (its log says
    "migration retries exhausted" at attempt 0): the killed worker's requests get a 500, the others the engine's
    answer; nothing is returned truncated."""
    stack = _stack(dynamo_stack_factory, 3)
    cases = _cases(8)
    outcomes = run(_kill_mid_run(stack, cases, "vllm"))
    reference = run(_reference(cases))
    failed = [o for o in outcomes if o.error is not None]
    assert failed, "the kill hit no request in flight"
    for outcome, ref in zip(outcomes, reference, strict=True):
        if outcome.error is not None:
            assert isinstance(outcome.error, EngineHTTPError), outcome.describe()
            assert outcome.error.status == 500
        else:
            assert_equivalent(ref, outcome)


def test_crash_fault_mid_generation_is_a_503(dynamo_stack_factory: StackFactory) -> None:
    """The worker's ``crash_after`` fault: the process exits after 5 streamed tokens; the frontend answers 503."""
    stack = _stack(dynamo_stack_factory, 0)
    case = Case([5, 6, 7], {"max_tokens": 20, "nvext": {"annotations": ["mock-fault:crash_after=5"]}})

    async def one() -> Outcome:
        async with EngineClient(stack.url) as client:
            return await run_case(client, transport="dynamo", model=MODEL, case=case, timeout=30.0)

    outcome = run(one())
    assert isinstance(outcome.error, EngineHTTPError), outcome.describe()
    assert outcome.error.status == 503
    deadline = time.monotonic() + 10.0
    while all(w.popen.poll() is None for w in stack.workers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = sorted(w.popen.poll() is not None for w in stack.workers())
    assert codes == [False, True], "exactly one worker exited"
