"""Group 5: 1,000 concurrent ``generate()`` calls (rendering from messages with a ``RendererPool``) through one
``EngineClient`` against one mock vLLM (a subprocess, with MoE routing on).

Every result is checked against the deterministic engine, computed here through the mock's own engine API (the
mock's output is a pure function of the request): prompt ids (the pool's rendering), completion ids, logprobs,
finish reason and the routed-experts table. Event-loop lag is measured by a ticker coroutine that sleeps 1 ms in a
loop and records how much longer each sleep took.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import numpy as np

from benchmarks import servers
from benchmarks.harness import Section, Target, md_table, percentile
from mockservers.config import BUILTIN_TOKENIZER, MockConfig
from mockservers.engine import Engine, SamplingParams
from mockservers.tokenizer import load_tokenizer as load_mock_tokenizer
from renderers.client import EngineClient, generate
from renderers.factory import create_renderer, create_renderer_pool
from renderers.types import Message

MODEL = "tiny-qwen3"
LAYERS, TOP_K, EXPERTS = 4, 2, 128
TICK = 0.001
#: The measured client is configured with this ``max_in_flight`` (``EngineClient``'s default is uncapped, so that a
#: rollout worker never silently keeps fewer sequences in the engine's batch); the uncapped run is reported beside it.
GATE = 32


def conversation(i: int) -> list[Message]:
    return [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": f"Question {i}: what is {i} plus {i * 7 % 13}? Explain briefly."},
    ]


def sampling(i: int) -> dict[str, Any]:
    return {"max_tokens": 48, "temperature": 1.0, "seed": 1000 + i}


class Expected:
    """The mock's deterministic engine, used directly."""

    def __init__(self, max_model_len: int) -> None:
        tok = load_mock_tokenizer(str(BUILTIN_TOKENIZER))
        self.engine = Engine(tok.ordinary_ids, tok.eos_id, MockConfig().eos_period)
        self.max_model_len = max_model_len

    def check(self, i: int, res: Any, prompt_ids: list[int], stop_ids: list[int]) -> str | None:
        sp = sampling(i)
        params = SamplingParams(
            max_tokens=min(sp["max_tokens"], self.max_model_len - len(prompt_ids)),
            temperature=sp["temperature"],
            seed=sp["seed"],
            stop_token_ids=frozenset(stop_ids),
        )
        c = self.engine.generate(prompt_ids, params)
        if res["prompt_ids"] != prompt_ids:
            return "prompt ids"
        if res["completion_ids"] != c.token_ids:
            return "completion ids"
        if res["completion_logprobs"] != c.logprobs:
            return "logprobs"
        if res["finish_reason"] != c.finish_reason:
            return f"finish reason {res['finish_reason']} != {c.finish_reason}"
        table = self.engine.routed_experts([*prompt_ids, *c.token_ids], 0, LAYERS, TOP_K, EXPERTS)
        routed = res["routed_experts"]
        if routed is None or not np.array_equal(routed.to_numpy(), table):
            return "routed experts"
        return None


async def _run(url: str, n: int, *, pre_rendered: bool = False, max_in_flight: int | None = GATE) -> dict[str, Any]:
    # Import transformers' AutoTokenizer once in this thread first: the pool loads its tokenizers from 4 threads at
    # once, and concurrent first imports of transformers' lazy module can fail with ImportError (seen here).
    from transformers import AutoTokenizer  # noqa: F401

    pool = await asyncio.to_thread(create_renderer_pool, BUILTIN_TOKENIZER, size=4)
    stop_ids = list(pool.get_stop_token_ids())
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - t0 - TICK)

    async with EngineClient(url, max_in_flight=max_in_flight) as client:
        prompts = {i: pool.render_ids(conversation(i), add_generation_prompt=True) for i in range(n) if pre_rendered}
        plain = create_renderer(BUILTIN_TOKENIZER) if pre_rendered else None

        async def one(i: int) -> Any:
            if pre_rendered and i >= 0:  # diagnostic: no rendering, so no worker threads competing for the GIL
                return await generate(client=client, renderer=plain, messages=[], model=MODEL,
                                      prompt_ids=prompts[i], sampling_params=sampling(i))  # fmt: skip
            return await generate(client=client, renderer=pool, messages=conversation(i), model=MODEL,
                                  sampling_params=sampling(i))  # fmt: skip

        await one(-1)  # warm-up: connection, max_prompt_len discovery, tokenizer caches
        tick = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        wall = time.perf_counter() - t0
        done.set()
        await tick
    expected = Expected(2048)
    errors: dict[str, int] = {}
    wrong: dict[str, int] = {}
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            key = f"{type(res).__name__}: {str(res)[:120]}"
            errors[key] = errors.get(key, 0) + 1
            continue
        prompt_ids = pool.render_ids(conversation(i), add_generation_prompt=True)
        problem = expected.check(i, res, prompt_ids, stop_ids)
        if problem is not None:
            wrong[problem] = wrong.get(problem, 0) + 1
    finishes: dict[str, int] = {}
    for res in results:
        if not isinstance(res, BaseException):
            finishes[str(res["finish_reason"])] = finishes.get(str(res["finish_reason"]), 0) + 1
    return {"wall": wall, "lags": lags, "errors": errors, "wrong": wrong, "finishes": finishes}


def run(*, quick: bool) -> Section:
    n = 200 if quick else 1000
    sec = Section(f"5. {n:,} concurrent generate() calls from messages (RendererPool) through one EngineClient")
    sec.blocks.append(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    opts = ["--moe-layers", str(LAYERS), "--moe-top-k", str(TOP_K), "--num-experts", str(EXPERTS)]
    with servers.mock("vllm", *opts) as server:
        out = asyncio.run(_run(server.url, n))
        diag = asyncio.run(_run(server.url, n, pre_rendered=True))
        uncapped = asyncio.run(_run(server.url, n, max_in_flight=None))
    lags = out["lags"] or [0.0]
    p50, p99, worst = percentile(lags, 50) * 1e3, percentile(lags, 99) * 1e3, max(lags) * 1e3
    n_err, n_wrong = sum(out["errors"].values()), sum(out["wrong"].values())
    rows = [
        [
            str(n),
            f"{out['wall']:.2f} s",
            f"{n / out['wall']:,.0f}",
            str(n_err),
            str(n_wrong),
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{worst:.1f}",
            str(len(lags)),
        ]
    ]
    header = ["calls", "wall", "calls/s", "errors", "wrong results", "loop lag p50 ms", "p99 ms", "max ms", "ticks"]
    sec.blocks.append(
        f"Mock vLLM with `{' '.join(opts)}`; pool of 4 renderers; `EngineClient(url, max_in_flight={GATE})`; "
        f"`max_tokens=48`, seeded sampling, natural EOS "
        f"(finish reasons: {out['finishes']}).\n\n" + md_table(header, rows, "rrrrrrrrr")
    )
    d_lags = diag["lags"] or [0.0]
    sec.blocks.append(
        f"Diagnostic (no target): the same {n:,} calls with `prompt_ids` pre-rendered and a plain renderer, so no "
        f"worker threads: {sum(diag['errors'].values())} errors, {sum(diag['wrong'].values())} wrong, "
        f"{n / diag['wall']:,.0f} calls/s, loop lag p50 {percentile(d_lags, 50) * 1e3:.2f} ms, "
        f"p99 {percentile(d_lags, 99) * 1e3:.2f} ms, max {max(d_lags) * 1e3:.1f} ms ({len(d_lags)} ticks). "
        f"GIL switch interval: {sys.getswitchinterval() * 1e3:.0f} ms."
    )
    u_lags = uncapped["lags"] or [0.0]
    sec.blocks.append(
        f"The same {n:,} calls through `EngineClient(url)` (the default, `max_in_flight=None`: every call in flight at "
        f"once): {sum(uncapped['errors'].values())} errors, {sum(uncapped['wrong'].values())} wrong, "
        f"{n / uncapped['wall']:,.0f} calls/s, loop lag p50 {percentile(u_lags, 50) * 1e3:.2f} ms, "
        f"p99 {percentile(u_lags, 99) * 1e3:.2f} ms, max {max(u_lags) * 1e3:.1f} ms ({len(u_lags)} ticks). Against a "
        "mock that answers in milliseconds, 1,000 responses land in a few loop iterations; the cap spreads them out."
    )
    if out["errors"]:
        sec.blocks.append("Errors: " + "; ".join(f"{k} ×{v}" for k, v in out["errors"].items()))
    if out["wrong"]:
        sec.blocks.append("Wrong results: " + "; ".join(f"{k} ×{v}" for k, v in out["wrong"].items()))
    sec.targets += [
        Target("5", "errors", n_err, 0, "le", unit="errors"),
        Target("5", "wrong results (vs the deterministic engine)", n_wrong, 0, "le", unit="results"),
        Target("5", f"event-loop lag p99 (max_in_flight={GATE})", round(p99, 2), 20.0, "le", unit="ms"),
    ]
    return sec
