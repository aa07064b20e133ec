"""Fault matrix: each fault of the mocks gives the same outcome on both transports (same result or same error
class), within the client's timeout."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings

from renderers.client import EngineClient
from renderers.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    LogprobMismatchError,
    MalformedResponseError,
    MissingCompletionIdsError,
    RenderersError,
)
from renderers.testing.equivalence import Outcome, assert_equivalent, run_case
from renderers.testing.strategies import Case, MoeSettings, cases

from .conftest import CLIENT_TIMEOUT, EOS_ID, MODEL, VOCAB_SIZE, Servers, run

DENSE = MoeSettings(0, 8, 128)
MOE = MoeSettings(2, 2, 64)
CASE = Case(list(range(100, 140)), {"max_tokens": 12, "routed_experts_prompt_start": 20, "seed": 7}, [EOS_ID])


async def _both(
    servers: Servers, case: Case, moe: MoeSettings, fault: str | None, dynamo: str = "full"
) -> list[Outcome]:
    headers = {"x-mock-fault": fault} if fault else None
    out = []
    for kind, variant in (("vllm", "prime-rl"), ("dynamo", dynamo)):
        async with EngineClient(servers.get(kind, variant, moe).url) as client:
            out.append(await run_case(client, transport=kind, model=MODEL, case=case, extra_headers=headers,
                                      timeout=CLIENT_TIMEOUT))  # fmt: skip
    return out


@pytest.mark.parametrize("mode", ["full", "trimmed"])
def test_dynamo_routing_modes_equal_vllm(servers: Servers, mode: str) -> None:
    """An older worker's full-sequence routing, trimmed by the client, equals a newer worker's trimmed routing."""
    vllm, dynamo = run(_both(servers, CASE, MOE, None, dynamo=mode))
    assert_equivalent(vllm, dynamo)
    assert vllm.result is not None
    routed = vllm.result["routed_experts"]
    assert routed is not None
    assert routed.start == 20
    assert routed.rows == len(CASE.prompt_ids) + len(vllm.result["completion_ids"]) - 1 - 20


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases(vocab_size=VOCAB_SIZE, max_prompt_len=512, max_tokens=16, eos_id=EOS_ID))
def test_dynamo_routing_modes_equal_vllm_for_any_case(servers: Servers, case: Case) -> None:
    for mode in ("full", "trimmed"):
        vllm, dynamo = run(_both(servers, case, MOE, None, dynamo=mode))
        assert_equivalent(vllm, dynamo, f"Dynamo routing {mode}")


def test_empty_completion_ids_is_a_valid_empty_completion(servers: Servers) -> None:
    vllm, dynamo = run(_both(servers, CASE, DENSE, "completion_ids=empty"))
    assert_equivalent(vllm, dynamo)
    for outcome in (vllm, dynamo):
        assert outcome.result is not None, outcome.describe()
        assert outcome.result["completion_ids"] == []
        assert outcome.result["completion_logprobs"] == []


def test_empty_completion_ids_with_routing_same_outcome(servers: Servers) -> None:
    """With MoE on, the mock still routes the completion it generated: the table cannot line up with zero
    tokens, and both transports must say so the same way."""
    vllm, dynamo = run(_both(servers, CASE, MOE, "completion_ids=empty"))
    assert_equivalent(vllm, dynamo)


CONTENT_FAULTS = [
    ("completion_ids=missing", MissingCompletionIdsError),
    ("logprobs=mismatch", LogprobMismatchError),
    ("invalid_json", MalformedResponseError),
]


@pytest.mark.parametrize("moe", [DENSE, MOE], ids=["dense", "moe"])
@pytest.mark.parametrize(("fault", "error"), CONTENT_FAULTS, ids=[f for f, _ in CONTENT_FAULTS])
def test_content_faults_same_error(servers: Servers, moe: MoeSettings, fault: str, error: type[RenderersError]) -> None:
    vllm, dynamo = run(_both(servers, CASE, moe, fault))
    assert_equivalent(vllm, dynamo)
    assert isinstance(vllm.error, error), vllm.describe()
    assert isinstance(dynamo.error, error), dynamo.describe()


HTTP_FAULTS: list[tuple[str, type[RenderersError], int | None]] = [
    ("status=500", EngineHTTPError, 500),
    ("status=503", EngineHTTPError, 503),
    ("status=429", EngineHTTPError, 429),
    ("status=400", EngineHTTPError, 400),
    ("status=404", EngineHTTPError, 404),
    ('{"status": 502, "body": "upstream gone"}', EngineHTTPError, 502),
    ("status=503; fail_first=1", EngineHTTPError, 503),
    ("reset", EngineConnectionError, None),
    ("truncate", EngineConnectionError, None),
    ("hang", EngineTimeoutError, None),
    (f"delay_s={CLIENT_TIMEOUT * 2}", EngineTimeoutError, None),
]


@pytest.mark.parametrize(("fault", "error", "status"), HTTP_FAULTS, ids=[f for f, _, _ in HTTP_FAULTS])
def test_http_faults_same_error_within_timeout(
    servers: Servers, fault: str, error: type[RenderersError], status: int | None
) -> None:
    t0 = time.perf_counter()
    vllm, dynamo = run(_both(servers, CASE, MOE, fault))
    assert time.perf_counter() - t0 < 2 * (CLIENT_TIMEOUT + 1.0)
    assert_equivalent(vllm, dynamo)
    for outcome in (vllm, dynamo):
        assert isinstance(outcome.error, error), outcome.describe()
        assert outcome.elapsed_s < CLIENT_TIMEOUT + 1.0
        if status is not None:
            assert isinstance(outcome.error, EngineHTTPError)
            assert outcome.error.status == status


def test_short_delay_same_result(servers: Servers) -> None:
    """A delay shorter than the timeout is no fault at all: the results are equal."""
    vllm, dynamo = run(_both(servers, CASE, MOE, f"delay_s={CLIENT_TIMEOUT / 4}"))
    assert_equivalent(vllm, dynamo)
    assert vllm.result is not None


def test_chat_only_logprobs_are_exact(servers: Servers) -> None:
    """Without engine_data.completion_logprobs the client reads choices[].logprobs, which Dynamo prints at
    float32 precision (-7.651155 for vLLM's -7.6511549949646); rounding back to float32 makes them exact."""
    vllm, dynamo = run(_both(servers, CASE, MOE, None))
    dynamo_chat_only = run(_both(servers, CASE, MOE, "logprobs=chat-only"))[1]
    assert_equivalent(vllm, dynamo)
    assert dynamo_chat_only.result is not None
    assert_equivalent(vllm, dynamo_chat_only)
