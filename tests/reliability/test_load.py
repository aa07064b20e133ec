"""Load: N requests at concurrency C through ``generate()`` against each mock, with 1% random injected faults.

Every non-faulted result equals the deterministic engine's own output (ids and logprobs), every faulted one is a
typed error, and the server's journal holds exactly one entry per call (matched by ``X-Request-Id``): nothing lost,
nothing duplicated. The default run does 500 at concurrency 64; ``nox -s fuzz`` runs 10,000 at 256.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from mockservers.engine import SamplingParams
from mockservers.server import MockServer
from renderers.client import EngineClient, generate
from renderers.errors import EngineConnectionError, EngineHTTPError, GenerateError, ResponseError
from tests.fuzz.counter import count
from tests.helpers.fake_renderer import STOP_IDS, FakeRenderer

FAULTS = {  # x-mock-fault value -> the error it must give
    "status=503": EngineHTTPError,
    "status=500": EngineHTTPError,
    "status=429": EngineHTTPError,
    "reset": EngineConnectionError,
    "truncate": EngineConnectionError,
    "invalid_json": ResponseError,
    "logprobs=mismatch": ResponseError,
}
MAX_TOKENS = 12


def prompt(i: int) -> list[int]:
    return [(i * 7919 + k * 104729) % 2000 + 10 for k in range(3 + i % 29)]


async def run_load(kind: str, n: int, concurrency: int, fault_rate: float = 0.01, seed: int = 0) -> None:
    rng = random.Random(seed)
    plan = {i: rng.choice(sorted(FAULTS)) if rng.random() < fault_rate else None for i in range(n)}
    server = MockServer(kind, journal_size=n + 100, moe_layers=0).start()
    engine = server.state.engine
    sem = asyncio.Semaphore(concurrency)
    outcomes: dict[int, object] = {}
    renderer = FakeRenderer()
    t0 = time.monotonic()
    try:
        async with EngineClient(server.url, max_connections=concurrency, timeout=60) as client:

            async def one(i: int) -> None:
                headers = {"X-Request-Id": f"load-{i}"}
                if plan[i]:
                    headers["x-mock-fault"] = plan[i]  # type: ignore[assignment]
                async with sem:
                    try:
                        outcomes[i] = await generate(
                            client=client, renderer=renderer, messages=[], model="tiny-qwen3", prompt_ids=prompt(i),
                            transport=kind, sampling_params={"max_tokens": MAX_TOKENS, "temperature": 0.0},
                            extra_headers=headers, max_prompt_len=1000,
                        )  # fmt: skip
                    except GenerateError as exc:
                        outcomes[i] = exc

            await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.monotonic() - t0
        journal = [e for e in server.journal() if e["path"] in ("/inference/v1/generate", "/v1/chat/completions")]
    finally:
        server.stop()
    count(f"load: {kind} requests", n)

    assert len(outcomes) == n
    bad: list[str] = []
    for i, out in outcomes.items():
        fault = plan[i]
        if fault is None:
            expected = engine.generate(prompt(i), SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0,
                                                                 stop_token_ids=frozenset(STOP_IDS)))  # fmt: skip
            if not isinstance(out, dict):
                bad.append(f"{i}: unfaulted request failed: {out!r}")
            elif out["completion_ids"] != expected.token_ids or out["completion_logprobs"] != expected.logprobs:
                bad.append(f"{i}: result differs from the engine's")
        elif not isinstance(out, FAULTS[fault]):
            bad.append(f"{i}: fault {fault} gave {out!r}")
    assert not bad, f"{len(bad)} wrong outcomes, first: {bad[:5]}"
    seen = Counter(e["headers"].get("x-request-id") for e in journal)
    assert len(journal) == n, f"journal has {len(journal)} generate requests for {n} calls"
    assert set(seen) == {f"load-{i}" for i in range(n)}
    assert max(seen.values()) == 1, "a request reached the server twice"
    n_faulted = sum(1 for f in plan.values() if f)
    print(f"\n{kind}: {n} requests at concurrency {concurrency} in {elapsed:.1f} s ({n / elapsed:.0f}/s), "
          f"{n_faulted} faulted")  # fmt: skip


@pytest.mark.parametrize("kind", ["vllm", "dynamo"])
async def test_load_small(kind: str) -> None:
    await run_load(kind, 500, 64, fault_rate=0.02, seed=1)


@pytest.mark.slow
@pytest.mark.fuzz
@pytest.mark.parametrize("kind", ["vllm", "dynamo"])
async def test_load_10k_at_256(kind: str) -> None:
    await run_load(kind, 10_000, 256, fault_rate=0.01, seed=2)
